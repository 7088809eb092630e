"""Several simulated machines in one process, for the soak: `python -m gateway.soak.plants`.

Each machine is a `gateway.sandbox.plant.Plant` served by `run_plant` on its own
loopback port, with faster rates than the demo (time is compressed). This
module owns only the grouping: one seeded plant per machine name and port, and
one ground-truth file for all of them, written atomically every half second and
once more after every plant has finished (`final`). It prints nothing but
errors and knows nothing about the gateway.

Ground truth: `{"final": bool, "machines": {NAME: {"parts", "scrap", "alarms", "alarm_seconds"}}}`.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from gateway.sandbox.plant import Plant, run_plant, write_json_atomic

#: alarms outlast the longest gap between two gateway lives (a start-up on a loaded machine took 12 s), so
#: every alarm is seen by some gateway: polling cannot see a whole alarm that happened while nothing polled
ALARM_SECONDS = (20.0, 40.0)


def truth(plants: dict[str, Plant]) -> dict[str, Any]:
    """The combined ground truth; `final` once every machine stopped for good."""
    machines = {name: next(iter(p.ground_truth()["machines"].values())) for name, p in plants.items()}
    return {"final": all(p.final for p in plants.values()), "machines": machines}


async def serve(ports: dict[str, int], truth_path: Path, seed: int, duration: float, part_rate: float,
                alarm_every: float) -> None:
    """Serve every machine until SIGTERM; production stops after `duration` seconds (then `final`)."""
    plants = {name: Plant(seed=seed * 1000 + i, duration=duration, part_rate=part_rate,
                          mean_alarm_interval=alarm_every, alarm_duration=ALARM_SECONDS, scrap_ratio=0.03)
              for i, name in enumerate(ports)}
    tasks = [asyncio.create_task(run_plant(port=port, plant=plants[name]), name=f"plant-{name}")
             for name, port in ports.items()]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            failed = [t for t in tasks if t.done() and t.exception() is not None]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
            # the registers are written from the same state before this truth is taken (one loop)
            write_json_atomic(truth_path, truth(plants))
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        write_json_atomic(truth_path, truth(plants))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gateway.soak.plants")
    p.add_argument("--machine", action="append", required=True, metavar="NAME=PORT")
    p.add_argument("--ground-truth", type=Path, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--part-rate", type=float, default=20.0)
    p.add_argument("--alarm-every", type=float, default=25.0)
    args = p.parse_args(argv)
    ports = {}
    for spec in args.machine:
        name, _, port = spec.partition("=")
        ports[name] = int(port)
    try:
        asyncio.run(serve(ports, args.ground_truth, args.seed, args.duration, args.part_rate, args.alarm_every))
    except OSError as exc:
        print(f"soak plants: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
