"""The sandbox plant: one simulated CNC machine served over Modbus TCP.

This module owns a small, seeded simulation of machine `CNC-01` and serves it
with pymodbus's own TCP server, so an integrator (or a test) can run the
gateway against something that behaves like a shop floor. It also keeps a
ground-truth file saying what really happened, so an end-to-end run can check
that every part reached the ERP exactly once. It prints nothing (the CLI prints
the banner) and knows nothing about the gateway's rules or sinks.

Address map (unit id 1; zero-based protocol addresses; the HOLDING registers
are mirrored, value for value, in the INPUT registers):

    address  type    meaning
    0-1      uint32  good-part counter (high word first)
    2-3      uint32  scrap counter (high word first)
    4        uint16  alarm word: 0 = no alarm, else the alarm code (101..105)
    5        uint16  running bit: 1 = running, 0 = stopped (in alarm or finished)

Reading any other address returns the Modbus exception "illegal data address".

Behaviour: parts come at a few per second (exponential inter-arrival times
from a seeded RNG); a scrapped part increments only the scrap counter. Alarms
come now and then (mean every ~8 s) and last 2..4 s, during which running is 0
and nothing is made. After `duration` seconds no new part or alarm starts; an
alarm in progress is finished, the running bit drops to 0, and from then on
the values never change again (`final` becomes true) while the server keeps
serving them: until the plant is cancelled, or for `linger` seconds after the
final ground truth was written when `linger` is given (then it returns by
itself; `linebridge sandbox plant --duration` does this and exits).

Ground truth (JSON, replaced atomically at least every second and at exit):

    {"final": bool,
     "machines": {"CNC-01": {"parts": N, "scrap": N, "alarms": N, "alarm_seconds": X}}}

`parts` and `scrap` are exactly the counter values being served when the file
was written; `alarm_seconds` counts alarm time so far (completed alarms plus
the running one).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

MACHINE = "CNC-01"
UNIT_ID = 1
REG_PARTS, REG_SCRAP, REG_ALARM, REG_RUNNING = 0, 2, 4, 5
REGISTER_COUNT = 6
_HOLDING = 3  # function code used to write; holding and input share one block
_TICK = 0.05            # simulation step, seconds
_TRUTH_EVERY = 0.5      # ground-truth refresh, seconds


class Plant:
    """The simulated machine: state, the registers it serves, its ground truth.

    `advance(now)` moves the simulation to monotonic time `now`; everything else
    reads state. Rates are parameters so tests can make a busy or a quiet plant.
    """

    def __init__(self, seed: int | None = None, duration: float | None = None, *,
                 part_rate: float = 3.0, scrap_ratio: float = 0.06,
                 mean_alarm_interval: float = 8.0,
                 alarm_duration: tuple[float, float] = (2.0, 4.0)) -> None:
        self._rng = random.Random(seed)
        self.duration = duration
        self.part_rate = part_rate
        self.scrap_ratio = scrap_ratio
        self.mean_alarm_interval = mean_alarm_interval
        self.alarm_duration = alarm_duration
        self.parts = self.scrap = self.alarms = 0
        self.alarm_code = 0
        self.running = 1
        self.final = False
        self._alarm_seconds = 0.0  # completed alarms
        self._alarm_start: float | None = None
        self._alarm_end = math.inf
        self._t0: float | None = None
        self._now = 0.0
        self._end = math.inf
        self._next_part = math.inf
        self._next_alarm = math.inf

    # -- simulation -----------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Process every part, scrap and alarm event up to time `now`."""
        if self.final:
            return
        if self._t0 is None:
            self._t0 = now
            self._end = now + self.duration if self.duration is not None else math.inf
            self._schedule_from(now)
        while True:
            if self._alarm_start is not None:
                if self._alarm_end > now:
                    break
                self._finish_alarm()
                continue
            upcoming = min(self._next_part, self._next_alarm)
            if upcoming > now or upcoming >= self._end:
                break
            if self._next_part <= self._next_alarm:
                self._make_part(self._next_part)
            else:
                self._start_alarm(self._next_alarm)
        self._now = now
        if self._alarm_start is None and now >= self._end:
            self.running = 0
            self.final = True

    def _schedule_from(self, t: float) -> None:
        self._next_part = t + self._rng.expovariate(self.part_rate)
        self._next_alarm = t + self._rng.expovariate(1.0 / self.mean_alarm_interval)

    def _make_part(self, t: float) -> None:
        if self._rng.random() < self.scrap_ratio:
            self.scrap += 1
        else:
            self.parts += 1
        self._next_part = t + self._rng.expovariate(self.part_rate)

    def _start_alarm(self, t: float) -> None:
        self.alarms += 1
        self.alarm_code = self._rng.randint(101, 105)
        self.running = 0
        self._alarm_start = t
        self._alarm_end = t + self._rng.uniform(*self.alarm_duration)

    def _finish_alarm(self) -> None:
        assert self._alarm_start is not None
        self._alarm_seconds += self._alarm_end - self._alarm_start
        end = self._alarm_end
        self._alarm_start, self._alarm_end = None, math.inf
        self.alarm_code = 0
        self.running = 1
        self._schedule_from(end)  # memoryless: parts and alarms resume after the alarm

    # -- views ------------------------------------------------------------------------

    def registers(self) -> list[int]:
        """The six registers as served (see the address map)."""
        return [(self.parts >> 16) & 0xFFFF, self.parts & 0xFFFF,
                (self.scrap >> 16) & 0xFFFF, self.scrap & 0xFFFF,
                self.alarm_code, self.running]

    def ground_truth(self) -> dict[str, Any]:
        alarm_seconds = self._alarm_seconds
        if self._alarm_start is not None:
            alarm_seconds += max(0.0, self._now - self._alarm_start)
        return {"final": self.final,
                "machines": {MACHINE: {"parts": self.parts, "scrap": self.scrap,
                                       "alarms": self.alarms,
                                       "alarm_seconds": round(alarm_seconds, 3)}}}


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` with `data` as JSON: temp file in the same folder, fsync, rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


async def run_plant(host: str = "127.0.0.1", port: int = 5020, duration: float | None = None,
                    ground_truth: Path | None = None, seed: int | None = None,
                    ready: asyncio.Event | None = None, *,
                    plant: Plant | None = None,
                    clock: Callable[[], float] = time.monotonic,
                    linger: float | None = None,
                    on_final: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Serve the simulated plant on `host:port` until cancelled, or `linger` seconds after it became final.

    `ready` is set once the server listens and the first ground truth is written;
    `on_final` is called with the final ground truth once it is written.
    Cancelling the task is how the plant is stopped: it then writes the ground
    truth a last time, closes the server and returns the ground truth (it does
    not re-raise the cancellation). Raises RuntimeError if it cannot listen.
    """
    plant = plant or Plant(seed=seed, duration=duration)
    plant.advance(clock())
    published = plant.ground_truth()  # what the served registers say, always in step

    device = SimDevice(id=UNIT_ID, simdata=[
        SimData(0, values=plant.registers(), datatype=DataType.REGISTERS)])
    server = ModbusTcpServer(device, address=(host, port))
    await server.serve_forever(background=True)

    def save() -> None:
        if ground_truth is not None:
            write_json_atomic(Path(ground_truth), published)

    try:
        save()
        if ready is not None:
            ready.set()
        last_save = clock()
        served = plant.registers()
        while not plant.final:
            await asyncio.sleep(_TICK)
            plant.advance(clock())
            registers = plant.registers()
            if registers != served:
                # one write of all six registers: a client never sees half an update
                await server.async_setValues(UNIT_ID, _HOLDING, 0, registers)
                served = registers
            published = plant.ground_truth()
            if plant.final or clock() - last_save >= _TRUTH_EVERY:
                save()
                last_save = clock()
        if on_final is not None:
            on_final(published)
        if linger is None:
            await asyncio.Event().wait()  # keep serving the final values until cancelled
        else:
            await asyncio.sleep(linger)  # let a gateway read the final values, then stop
    except asyncio.CancelledError:
        pass  # cancellation is how a plant is stopped; the caller gets the ground truth
    finally:
        try:
            save()
        finally:
            await server.shutdown()
    return published
