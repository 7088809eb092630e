"""End to end in separate processes: plant -> `linebridge run` -> Odoo, with kill -9 on the gateway.

The gateway is killed with SIGKILL several times while parts are being made and
restarted each time; after the plant stops and the backlog drains, the work
order's qty_producing equals the plant's ground-truth part count exactly, the
scrap orders hold exactly the plant's scrap, and every alarm is one closed
downtime: nothing lost, nothing doubled.
"""
from __future__ import annotations

import json
import random
import signal
import time

import httpx

import asyncio

from gateway import config as config_mod
from gateway.demo import demo_config_text, odoo_summary, reconcile
from store.queue import Store
from tests.helpers import free_port, linebridge, port_open, stop, wait_for


def _odoo_qty(port: int) -> float:
    def call(model, method, args, kw=None):
        body = {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
            "service": "object", "method": "execute_kw",
            "args": ["sandbox", 2, "admin", model, method, args] + ([kw] if kw else [])}}
        r = httpx.post(f"http://127.0.0.1:{port}/jsonrpc", json=body, timeout=5)
        return r.json()["result"]
    (wc,) = call("mrp.workcenter", "search", [[["code", "=", "CNC-01"]]])
    rows = call("mrp.workorder", "search_read", [[["workcenter_id", "=", wc]]], {"fields": ["qty_producing"]})
    return sum(r["qty_producing"] for r in rows)


def _truth(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _backlog(state) -> int:
    store = Store(state / "store", readonly=True)  # read beside the running gateway
    try:
        return store.backlog("odoo")
    finally:
        store.close()


def test_kill_9_during_production_neither_loses_nor_doubles_a_part(tmp_path):
    plant_port, odoo_port = free_port(), free_port()
    truth_path = tmp_path / "truth.json"
    cfg = (demo_config_text().replace("port = 5020", f"port = {plant_port}")
           .replace("127.0.0.1:8069", f"127.0.0.1:{odoo_port}")
           .replace("poll_interval = 0.5", "poll_interval = 0.2"))
    cfg_path = tmp_path / "gateway.toml"
    cfg_path.write_text(cfg)
    state = tmp_path / "state"
    log = tmp_path / "gateway.log"
    rng = random.Random(42)

    odoo = linebridge(["sandbox", "odoo", "--port", str(odoo_port), "--data", str(tmp_path / "odoo.json")],
                      tmp_path / "odoo.log")
    plant = linebridge(["sandbox", "plant", "--port", str(plant_port), "--duration", "14",
                        "--ground-truth", str(truth_path), "--seed", "7"], tmp_path / "plant.log")
    gw = None
    try:
        wait_for(lambda: port_open(odoo_port) and port_open(plant_port), 20, "both sandboxes to listen")
        kills = 0
        for _ in range(4):
            before = _odoo_qty(odoo_port)
            gw = linebridge(["run", "--config", str(cfg_path), "--state-dir", str(state)], log)
            wait_for(lambda: _odoo_qty(odoo_port) > before, 20, "the restarted gateway to deliver parts")
            time.sleep(rng.uniform(0.0, 0.8))  # land the kill at a random point of the flow
            gw.send_signal(signal.SIGKILL)
            gw.wait(timeout=10)
            kills += 1
        assert not (_truth(truth_path) or {}).get("final"), "the plant stopped before the kills were done"

        gw = linebridge(["run", "--config", str(cfg_path), "--state-dir", str(state)], log)
        truth = wait_for(lambda: (t := _truth(truth_path)) and t["final"] and t, 40, "the plant to finish")
        parts = truth["machines"]["CNC-01"]["parts"]
        wait_for(lambda: _odoo_qty(odoo_port) == parts, 30,
                 f"Odoo to show the plant's {parts} parts (has {_odoo_qty(odoo_port)})")
        # stays right: nothing is counted twice once the backlog has drained
        wait_for(lambda: _backlog(state) == 0, 10, "an empty backlog")
        time.sleep(1.0)
        assert _odoo_qty(odoo_port) == parts
        assert kills == 4 and parts > 0
        odoo_view = asyncio.run(odoo_summary(config_mod.load(cfg_path)))
        assert reconcile(truth, odoo_view, poll=0.2) == [], (truth, odoo_view)

        started = time.monotonic()
        assert stop(gw, signal.SIGTERM, timeout=10) == 0
        assert time.monotonic() - started < 10
    finally:
        for proc in (gw, plant, odoo):
            if proc is not None and proc.poll() is None:
                stop(proc, signal.SIGKILL)
