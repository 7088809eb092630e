"""The sandbox plant: its simulation rules, and what a Modbus client reads from it."""
from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymodbus.client import AsyncModbusTcpClient

from gateway.sandbox.plant import MACHINE, Plant, run_plant


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def simulate(seed: int, duration: float, until: float, step: float = 0.05):
    plant = Plant(seed=seed, duration=duration)
    history = []
    t = 0.0
    while t <= until:
        plant.advance(t)
        history.append((t, plant.registers(), plant.final, plant.ground_truth()))
        t = round(t + step, 6)
    return plant, history


def counters(registers):
    return (registers[0] << 16) | registers[1], (registers[2] << 16) | registers[3]


def test_alarms_stop_production_and_last_two_to_four_seconds():
    plant, history = simulate(seed=7, duration=120, until=140)
    assert plant.final and plant.alarms >= 3 and plant.parts > 100 and plant.scrap > 0
    alarm_runs, start = [], None
    for (t, regs, _, _), (_, prev, _, _) in zip(history[1:], history):
        in_alarm = regs[4] != 0
        if in_alarm:
            assert 101 <= regs[4] <= 105 and regs[5] == 0
            assert counters(regs) == counters(prev)  # nothing is made during an alarm
            start = t if start is None else start
        elif start is not None:
            alarm_runs.append(t - start)
            start = None
    assert len(alarm_runs) == plant.alarms
    assert all(1.9 <= run <= 4.1 for run in alarm_runs)  # sampled every 0.05 s
    truth = plant.ground_truth()["machines"][MACHINE]
    assert 2 * plant.alarms <= truth["alarm_seconds"] <= 4 * plant.alarms


def test_counters_only_grow_and_freeze_once_final():
    plant, history = simulate(seed=3, duration=20, until=40)
    final_at = next(i for i, (_, _, final, _) in enumerate(history) if final)
    for (_, regs, _, truth), (_, prev, _, _) in zip(history[1:], history):
        parts, scrap = counters(regs)
        assert parts >= counters(prev)[0] and scrap >= counters(prev)[1]
        assert (truth["machines"][MACHINE]["parts"], truth["machines"][MACHINE]["scrap"]) \
            == (parts, scrap)
    frozen = {(tuple(regs), json.dumps(truth)) for _, regs, _, truth in history[final_at:]}
    assert len(frozen) == 1
    assert history[final_at][1][4:] == [0, 0]  # no alarm, not running


def test_same_seed_same_plant():
    assert simulate(5, 15, 25)[0].ground_truth() == simulate(5, 15, 25)[0].ground_truth()


def test_served_counters_equal_the_ground_truth_after_final(tmp_path: Path):
    truth_file = tmp_path / "truth.json"
    port = free_port()

    async def scenario():
        ready = asyncio.Event()
        plant = asyncio.create_task(run_plant(port=port, duration=3.0, ground_truth=truth_file,
                                              seed=11, ready=ready))
        await asyncio.wait_for(ready.wait(), 5)
        reads = 0
        deadline = time.monotonic() + 12  # 3 s run + at most 4 s of a last alarm + slack
        while True:  # every read of the file must be complete, valid JSON
            truth = json.loads(truth_file.read_text())
            reads += 1
            if truth["final"]:
                break
            assert time.monotonic() < deadline, "the plant never became final"
            await asyncio.sleep(0.02)
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2)
        assert await client.connect()
        holding = (await client.read_holding_registers(0, count=6, device_id=1)).registers
        inputs = (await client.read_input_registers(0, count=6, device_id=1)).registers
        await asyncio.sleep(0.3)  # values must not change any more
        holding_later = (await client.read_holding_registers(0, count=6, device_id=1)).registers
        client.close()
        plant.cancel()
        returned = await asyncio.wait_for(plant, 5)
        return truth, reads, holding, inputs, holding_later, returned

    truth, reads, holding, inputs, holding_later, returned = asyncio.run(scenario())
    machine = truth["machines"][MACHINE]
    assert reads > 10
    assert counters(holding) == (machine["parts"], machine["scrap"])
    assert machine["parts"] > 0
    assert holding == inputs == holding_later
    assert holding[4:] == [0, 0]
    assert returned == truth == json.loads(truth_file.read_text())
    assert list(tmp_path.iterdir()) == [truth_file]  # no temp files left behind


def test_cancelling_a_running_plant_writes_the_ground_truth(tmp_path: Path):
    truth_file = tmp_path / "truth.json"

    async def scenario():
        ready = asyncio.Event()
        plant = asyncio.create_task(run_plant(port=free_port(), duration=None,
                                              ground_truth=truth_file, seed=1, ready=ready))
        await asyncio.wait_for(ready.wait(), 5)
        await asyncio.sleep(0.3)  # let it produce a little before stopping it
        plant.cancel()
        return await asyncio.wait_for(plant, 5)

    returned = asyncio.run(scenario())
    assert returned["final"] is False
    assert json.loads(truth_file.read_text()) == returned


def test_sandbox_plant_with_a_duration_says_when_it_is_final_and_exits(tmp_path: Path):
    truth_file = tmp_path / "truth.json"
    # before, it served on until killed: the timeout fired
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "sandbox", "plant", "--port", str(free_port()),
                          "--duration", "1", "--linger", "0.5", "--seed", "3", "--ground-truth", str(truth_file)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    truth = json.loads(truth_file.read_text())
    machine = truth["machines"][MACHINE]
    assert truth["final"] is True
    assert (f"plant: final: {machine['parts']} good parts, {machine['scrap']} scrap, {machine['alarms']} alarm(s) "
            "(ground truth written); counters frozen, exiting in 0.5 s") in out.stdout
