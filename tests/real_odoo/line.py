"""A line for the conformance scenarios: the sandbox plant and `linebridge run`, each its own process.

`Line` writes the demo configuration pointed at the plant's free port and at
one Odoo database (real or sandbox), with extra TOML appended per scenario,
starts the plant (`linebridge sandbox plant --duration --ground-truth --seed`)
and the gateway, kills or restarts the gateway, reads the plant's ground truth
and the gateway's backlog and dead letters, and runs `linebridge odoo check`.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway.demo import demo_config_text
from store.queue import Store
from tests.helpers import free_port, linebridge, port_open, stop, wait_for
from tests.real_odoo.harness import OdooDb


def sink_toml(odoo: OdooDb, protocol: str | None = None, **extra: Any) -> str:
    """The demo's [sinks.odoo] keys for this database, and `extra` keys (TOML values)."""
    keys = {**odoo.sink_config(protocol), **extra}
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())


def config_text(plant_port: int, odoo: OdooDb, protocol: str | None = None, extra: str = "",
                poll: float = 0.2, **sink: Any) -> str:
    text = demo_config_text().replace("port = 5020", f"port = {plant_port}")
    text = text.replace("poll_interval = 0.5", f"poll_interval = {poll}")
    head, _, tail = text.partition("[sinks.odoo]\n")
    # drop the demo's connection keys; the rest of the section (loss, alarm codes ...) stays
    tail = re.sub(r'^(url|database|login|api_key|protocol) = .*\n', "", tail, flags=re.M)
    return head + "[sinks.odoo]\n" + sink_toml(odoo, protocol, **sink) + tail + "\n" + extra


class Line:
    def __init__(self, work: Path, odoo: OdooDb, *, protocol: str | None = None, extra: str = "",
                 poll: float = 0.2, **sink: Any) -> None:
        self.work, self.odoo = work, odoo
        work.mkdir(parents=True, exist_ok=True)
        self.plant_port = free_port()
        self.truth_path = work / "truth.json"
        self.config_path = work / "linebridge.toml"
        self.config_path.write_text(config_text(self.plant_port, odoo, protocol, extra, poll, **sink))
        self.state = work / "state"
        self.log_path = work / "gateway.log"
        self.plant: subprocess.Popen | None = None
        self.gw: subprocess.Popen | None = None

    # -- processes --
    def start_plant(self, duration: float, seed: int = 7) -> None:
        self.plant = linebridge(["sandbox", "plant", "--port", str(self.plant_port), "--duration", str(duration),
                                 "--ground-truth", str(self.truth_path), "--seed", str(seed)],
                                self.work / "plant.log")
        wait_for(lambda: port_open(self.plant_port), 20, "the sandbox plant")

    def start_gateway(self) -> None:
        self.gw = linebridge(["run", "--config", str(self.config_path), "--state-dir", str(self.state)],
                             self.log_path)

    def kill_gateway(self) -> None:
        assert self.gw is not None
        self.gw.send_signal(signal.SIGKILL)
        self.gw.wait(timeout=10)
        self.gw = None

    def stop_gateway(self) -> int:
        assert self.gw is not None
        code = stop(self.gw, signal.SIGTERM, timeout=20)
        self.gw = None
        return code

    def close(self) -> None:
        for proc in (self.gw, self.plant):
            if proc is not None and proc.poll() is None:
                stop(proc, signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    # -- what happened --
    def truth(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.truth_path.read_text())
        except (OSError, ValueError):
            return None

    def final_truth(self, timeout: float) -> dict[str, Any]:
        t = wait_for(lambda: (t := self.truth()) and t["final"] and t, timeout, "the plant to finish")
        return t["machines"]["CNC-01"]

    def _store(self) -> Store:
        return Store(self.state / "store", readonly=True)  # read beside the running gateway

    def backlog(self) -> int:
        store = self._store()
        try:
            return store.backlog("odoo")
        finally:
            store.close()

    def drained(self, timeout: float = 90) -> None:
        wait_for(lambda: self.state.exists() and self.backlog() == 0, timeout,
                 f"an empty backlog (gateway log tail: {self.log()[-1500:]})")

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True,
                              timeout=timeout)

    def dead_letters(self) -> list[dict[str, Any]]:
        out = self.cli("queue", "dlq", "list", "--json", "--state-dir", str(self.state))
        assert out.returncode == 0, out.stderr
        text = out.stdout.strip()
        if not text:
            return []
        try:
            doc = json.loads(text)
            return doc if isinstance(doc, list) else doc.get("dead_letters", [doc])
        except ValueError:  # one object per line (issue #14 asks for one document)
            return [json.loads(line) for line in text.splitlines() if line.strip()]

    def odoo_check(self) -> subprocess.CompletedProcess:
        return self.cli("odoo", "check", "--config", str(self.config_path))
