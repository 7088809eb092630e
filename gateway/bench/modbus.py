"""`linebridge bench modbus`: what polling Modbus devices costs, coalesced vs one request per tag.

This module owns the Modbus polling benchmark. It starts `devices` pymodbus
TCP servers in a separate process (so their CPU is not counted against the
polling side), then polls them with real `ModbusDriver` instances, each
device with `registers` contiguous uint16 tags, in two phases of the same run:
the coalesced plan the driver makes (one request per 125 registers), and the
baseline of one request per tag (`max_registers = 1`). Each phase runs half of
`seconds` after a warm-up poll. It reports values per second, the CPU the
polling process used (seconds per wall-clock second, and per 1000 values),
requests per poll in both phases and their ratio, and the p99 jitter of the
poll period. Figures are ratios against the baseline measured in the same
run, because the machines this runs on are shared and noisy.

It is the driver's own figure (`scope: "driver"`): the polling side alone,
no rules, store, signing or sinks; the whole gateway's cost per value is
`linebridge bench gateway`. A phase keeps up when it made at least
`KEEP_UP` of the polls its period asks for; the one-request-per-tag phase
often cannot (each poll takes longer than the period), and then its CPU per
value describes an overloaded loop, not the same work: the report says it
fell behind (`kept_up_uncoalesced: false`, and how far) and gives no CPU
ratio (`cpu_per_value_ratio: null`) instead of comparing the two.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import select
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from drivers.base import Backoff, ConfigCollector, Quality
from drivers.modbus import ModbusDriver

_READY_TIMEOUT = 30.0
#: a phase keeps up when it made at least this share of the polls its period asks for
KEEP_UP = 0.9


# -- the device side: a separate process --------------------------------------------------

def _serve_main() -> None:
    """Child process: serve `devices` Modbus TCP servers; print their ports; run until
    stdin closes (the parent went away) or SIGTERM."""
    devices, registers = int(sys.argv[1]), int(sys.argv[2])
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    async def serve() -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice
        servers = []
        for _ in range(devices):
            device = SimDevice(id=1, simdata=[SimData(
                0, values=[i % 65536 for i in range(registers)], datatype=DataType.REGISTERS)])
            server = ModbusTcpServer(device, address=("127.0.0.1", 0))
            await server.serve_forever(background=True)
            servers.append(server)
        ports = [s.transport.sockets[0].getsockname()[1] for s in servers]
        print(json.dumps({"ports": ports}), flush=True)
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, done.set)
        loop.add_reader(sys.stdin.fileno(), lambda: done.set() if not os.read(
            sys.stdin.fileno(), 1024) else None)
        await done.wait()
        for server in servers:
            await server.shutdown()

    asyncio.run(serve())


class _Servers:
    """The server process, started and stopped by pid."""

    def __init__(self, devices: int, registers: int) -> None:
        self.devices, self.registers = devices, registers
        self.ports: list[int] = []
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "_Servers":
        code = "from gateway.bench.modbus import _serve_main; _serve_main()"
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code, str(self.devices), str(self.registers)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True)
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], _READY_TIMEOUT)
        line = self._proc.stdout.readline() if ready else b""
        if not line:
            self.__exit__()
            raise RuntimeError(f"the Modbus server process did not start within "
                               f"{_READY_TIMEOUT:g} s")
        self.ports = json.loads(line)["ports"]
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the polling side: this process --------------------------------------------------------

@dataclass
class _Phase:
    """What one phase measured."""

    values: int = 0
    bad: int = 0
    polls: int = 0
    requests: int = 0
    request_polls: int = 0  # polls the request count covers
    cpu_s: float = 0.0
    wall_s: float = 0.0
    deviations_ms: list[float] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        per_s = self.values / self.wall_s if self.wall_s else 0.0
        return {
            "values_per_s": round(per_s, 1),
            "cpu_fraction": round(self.cpu_s / self.wall_s, 4) if self.wall_s else 0.0,
            "cpu_s_per_1000_values": round(1000 * self.cpu_s / self.values, 5)
            if self.values else None,
            "requests_per_poll": round(self.requests / self.request_polls, 3)
            if self.request_polls else 0.0,
            "jitter_p99_ms": round(_p99(self.deviations_ms), 2),
            "polls": self.polls,
            "bad_values": self.bad,
        }


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def _driver(index: int, port: int, registers: int, period: float,
            max_registers: int) -> ModbusDriver:
    tags = {f"r{i}": {"function": "holding", "address": i, "type": "uint16"}
            for i in range(registers)}
    section = {"type": "modbus_tcp", "host": "127.0.0.1", "port": port, "unit_id": 1,
               "poll_interval": period, "timeout": 5.0, "max_registers": max_registers,
               "tags": tags}
    issues = ConfigCollector()
    config = ModbusDriver.parse_config(section, f"devices.bench{index}", issues)
    if config is None:
        raise ValueError("; ".join(map(str, issues.issues)))
    return ModbusDriver(f"bench{index}", config, backoff=Backoff(initial=0.1, cap=1.0))


async def _run_phase(ports: list[int], registers: int, period: float, seconds: float,
                     max_registers: int) -> _Phase:
    drivers = [_driver(i, port, registers, period, max_registers)
               for i, port in enumerate(ports)]
    phase = _Phase()
    warm = [asyncio.Event() for _ in drivers]
    measuring = asyncio.Event()
    window: dict[str, float] = {}

    async def consume(i: int, driver: ModbusDriver) -> None:
        stamps: list[float] = []
        reads: list[int] = []  # the driver's successful requests so far, at each batch
        async for batch in driver.samples():
            now = time.monotonic()
            if not measuring.is_set():
                if all(s.quality is Quality.GOOD for s in batch):
                    warm[i].set()
                continue
            if now > window["end"]:
                continue  # stop() ends the stream
            stamps.append(now)
            reads.append(driver.health.reads)
            good = sum(1 for s in batch if s.quality is Quality.GOOD)
            phase.values += good
            phase.bad += len(batch) - good
        phase.polls += len(stamps)
        if len(stamps) > 1:  # requests between the first and the last measured batch
            phase.request_polls += len(stamps) - 1
            phase.requests += reads[-1] - reads[0]
        phase.deviations_ms.extend(abs((b - a) - period) * 1000
                                   for a, b in zip(stamps, stamps[1:]))

    tasks = [asyncio.create_task(consume(i, d)) for i, d in enumerate(drivers)]
    try:
        await asyncio.wait_for(asyncio.gather(*(w.wait() for w in warm)), _READY_TIMEOUT)
        cpu0, wall0 = time.process_time(), time.monotonic()
        window["end"] = wall0 + seconds
        measuring.set()
        await asyncio.sleep(seconds)
        phase.cpu_s = time.process_time() - cpu0
        phase.wall_s = time.monotonic() - wall0
    finally:
        for driver in drivers:
            await driver.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    return phase


def run(devices: int = 10, registers: int = 100, period: float = 0.1,
        seconds: float = 20.0) -> dict:
    """Run the benchmark and return its figures (see the module docstring)."""
    if devices < 1 or not 1 <= registers <= 65536 or period <= 0 or seconds <= 0:
        raise ValueError("devices >= 1, registers 1..65536, period > 0 and seconds > 0")
    half = seconds / 2
    quiet = logging.getLogger("linebridge.drivers.modbus")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        with _Servers(devices, registers) as servers:
            coalesced = asyncio.run(_run_phase(servers.ports, registers, period, half, 125))
            single = asyncio.run(_run_phase(servers.ports, registers, period, half, 1))
    finally:
        quiet.setLevel(level)
    fast, slow = coalesced.figures(), single.figures()
    asked = devices * half / period     # polls each phase's period asks for
    fast_share, slow_share = coalesced.polls / asked, single.polls / asked
    enough = KEEP_UP * asked - devices  # a poll per device may fall either side of the window's edges
    result: dict[str, Any] = {
        "scope": "driver",
        "devices": devices, "registers": registers, "period_s": period,
        "phase_seconds": half, **fast,
        "poll_share": round(fast_share, 3), "kept_up": coalesced.polls >= enough,
        "poll_share_uncoalesced": round(slow_share, 3), "kept_up_uncoalesced": single.polls >= enough,
        "values_per_s_uncoalesced": slow["values_per_s"],
        "cpu_fraction_uncoalesced": slow["cpu_fraction"],
        "cpu_s_per_1000_values_uncoalesced": slow["cpu_s_per_1000_values"],
        "requests_per_poll_uncoalesced": slow["requests_per_poll"],
        "jitter_p99_ms_uncoalesced": slow["jitter_p99_ms"],
        "polls_uncoalesced": slow["polls"],
        "bad_values_uncoalesced": slow["bad_values"],
    }
    result["requests_ratio"] = (round(slow["requests_per_poll"] / fast["requests_per_poll"], 2)
                                if fast["requests_per_poll"] else 0.0)
    both_kept_up = result["kept_up"] and result["kept_up_uncoalesced"]
    result["cpu_per_value_ratio"] = (
        round(slow["cpu_s_per_1000_values"] / fast["cpu_s_per_1000_values"], 2)
        if both_kept_up and fast["cpu_s_per_1000_values"] and slow["cpu_s_per_1000_values"] else None)
    return result


def _table(r: dict) -> str:
    rows = [
        ("requests per poll", r["requests_per_poll"], r["requests_per_poll_uncoalesced"],
         f"ratio {r['requests_ratio']}x"),
        ("values per second", r["values_per_s"], r["values_per_s_uncoalesced"], ""),
        ("CPU fraction (CPU s / wall s)", r["cpu_fraction"], r["cpu_fraction_uncoalesced"], ""),
        ("CPU s per 1000 values", r["cpu_s_per_1000_values"],
         r["cpu_s_per_1000_values_uncoalesced"],
         f"ratio {r['cpu_per_value_ratio']}x" if r["cpu_per_value_ratio"] is not None
         else "no ratio: a phase could not keep up"),
        ("polls made / asked by the period", r["poll_share"], r["poll_share_uncoalesced"], ""),
        ("kept up", "yes" if r["kept_up"] else "NO", "yes" if r["kept_up_uncoalesced"] else "NO", ""),
        ("poll jitter p99 (ms)", r["jitter_p99_ms"], r["jitter_p99_ms_uncoalesced"], ""),
        ("polls measured", r["polls"], r["polls_uncoalesced"], ""),
        ("bad values", r["bad_values"], r["bad_values_uncoalesced"], ""),
    ]
    head = (f"Modbus polling: {r['devices']} devices x {r['registers']} uint16 registers, "
            f"period {r['period_s']:g} s, 2 phases of {r['phase_seconds']:g} s\n"
            f"the Modbus driver's own figures (polling alone: the whole gateway is `bench gateway`)\n"
            f"{'':32}{'coalesced':>12}{'1 per tag':>12}")
    def cell(value: Any) -> str:
        return "-" if value is None else str(value)
    return "\n".join([head] + [f"{name:32}{cell(a):>12}{cell(b):>12}  {note}".rstrip()
                               for name, a, b, note in rows])


def main(argv: list[str]) -> int:
    """`linebridge bench modbus [--json] [--devices N] [--registers N] [--period S] [--seconds S]`."""
    parser = argparse.ArgumentParser(
        prog="linebridge bench modbus",
        description="Poll pymodbus TCP servers (in another process) with the Modbus driver: "
                    "coalesced requests against one request per tag, in the same run.")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--registers", type=int, default=100, help="uint16 tags per device")
    parser.add_argument("--period", type=float, default=0.1, help="poll interval, seconds")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="total measuring time (two equal phases)")
    args = parser.parse_args(argv)
    try:
        result = run(args.devices, args.registers, args.period, args.seconds)
    except (ValueError, RuntimeError) as exc:
        print(f"bench modbus: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else _table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
