"""A SQL device's rows through `linebridge run` into the Odoo sandbox across kill -9 of the gateway.

`killed_runs` starts the sandbox Odoo (a free port, its database in a file), then `rounds` times: adds
rows to the table, starts the gateway, waits until Odoo shows more parts, and kills the gateway with
SIGKILL at a random point of the flow; then adds rows once more and starts the gateway that lives. The
test checks Odoo against the table inside the `with` block; on a clean exit the gateway must stop with 0.
"""
from __future__ import annotations

import random
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from tests.helpers import free_port, linebridge, port_open, stop, wait_for


@dataclass
class Run:
    odoo_port: int
    state: Path


@contextmanager
def killed_runs(tmp_path: Path, config: Callable[[int], str], insert: Callable[[int], None],
                produced: Callable[[int], float], rng: random.Random, rounds: int = 3,
                rows: int = 40) -> Iterator[Run]:
    odoo_port = free_port()
    cfg_path = tmp_path / "gateway.toml"
    cfg_path.write_text(config(odoo_port))
    run = Run(odoo_port, tmp_path / "state")
    log = tmp_path / "gateway.log"
    odoo = linebridge(["sandbox", "odoo", "--port", str(odoo_port), "--data", str(tmp_path / "odoo.json")],
                      tmp_path / "odoo.log")
    gw = None
    command = ["run", "--config", str(cfg_path), "--state-dir", str(run.state)]
    try:
        wait_for(lambda: port_open(odoo_port), 20, "the Odoo sandbox to listen")
        for _ in range(rounds):
            insert(rows)
            before = produced(odoo_port)
            gw = linebridge(command, log)
            wait_for(lambda: produced(odoo_port) > before, 20, "the gateway to deliver parts")
            time.sleep(rng.uniform(0.0, 0.3))   # land the kill at a random point of the flow
            gw.send_signal(signal.SIGKILL)
            gw.wait(timeout=10)
        insert(rows)
        gw = linebridge(command, log)
        yield run
        assert stop(gw, signal.SIGTERM, timeout=10) == 0
    finally:
        for proc in (gw, odoo):
            if proc is not None and proc.poll() is None:
                stop(proc, signal.SIGKILL)
