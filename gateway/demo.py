"""`linebridge demo`: the sandbox plant and the sandbox Odoo with a gateway between them.

It owns the rehearsal: both sandboxes start as child processes on fixed
loopback ports (plant 5020, Odoo 8069), the gateway runs in this process with
the bundled demo configuration and a throw-away state directory, progress is
printed every few seconds, and at the end a summary compares what Odoo recorded
with the plant's ground truth. With `--duration`, the demo waits for the plant
to finish, for the gateway to read the final counters and for the backlog to
drain before it stops.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

from gateway import config as config_mod
from gateway.sinks.odoo.client import OdooClient
from gateway.supervisor import Supervisor

PLANT_PORT = 5020
ODOO_PORT = 8069
PROGRESS_EVERY = 3.0


def demo_config_text() -> str:
    return resources.files("gateway").joinpath("demo.toml").read_text(encoding="utf-8")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen:
    log = open(log_path, "wb")
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", *args], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


async def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
            writer.close()
            return
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


def _read_truth(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


async def odoo_quantities(cfg: config_mod.Config) -> dict[str, dict[str, float]]:
    """qty_producing of the open work order of each mapped machine, read from Odoo."""
    sink = next(iter(cfg.sinks.values()))
    client = OdooClient(sink.url, sink.database, sink.login, sink.api_key, sink.timeout)
    out: dict[str, dict[str, float]] = {}
    try:
        for machine, mapping in cfg.machines.items():
            wc_ids = await _wc_ids(client, mapping.work_center)
            rows = await client.execute_kw("mrp.workorder", "search_read",
                                           [[["workcenter_id", "in", wc_ids]]],
                                           {"fields": ["qty_producing", "state"], "order": "id asc"})
            out[machine] = {"qty_producing": sum(float(r["qty_producing"]) for r in rows)}
    finally:
        await client.close()
    return out


async def _wc_ids(client: OdooClient, code: str | None) -> list[int]:
    rows = await client.execute_kw("mrp.workcenter", "search_read", [[["code", "=", code]]],
                                   {"fields": ["code"]})
    return [r["id"] for r in rows]


def _progress(sup: Supervisor, truth: dict[str, Any] | None) -> str:
    st = sup.status()
    sinks = " ".join(f"{n}: delivered={s['delivered']} failed={s['dead_lettered']} "
                     f"backlog={s['backlog']} state={s['state']}" for n, s in st["sinks"].items())
    parts = (truth or {}).get("machines", {}).get("CNC-01", {}).get("parts", "?")
    return (f"[{st['uptime']:6.1f}s] read={st['read']} events={st['events']} stored={st['stored']} "
            f"| {sinks} | plant parts={parts}")


async def _run(duration: float | None, as_json: bool, work: Path) -> int:
    cfg = config_mod.parse(demo_config_text(), source="demo.toml")
    for port, what in ((PLANT_PORT, "plant"), (ODOO_PORT, "Odoo sandbox")):
        if not _port_free(port):
            print(f"demo: port {port} on 127.0.0.1 is in use; the {what} needs it "
                  "(is another demo or an Odoo running?)", file=sys.stderr)
            return 1
    truth_path = work / "ground-truth.json"
    odoo = _spawn(["sandbox", "odoo", "--port", str(ODOO_PORT), "--data", str(work / "odoo.json")],
                  work / "odoo.log")
    plant_args = ["sandbox", "plant", "--port", str(PLANT_PORT), "--ground-truth", str(truth_path)]
    if duration is not None:
        plant_args += ["--duration", str(duration)]
    plant = _spawn(plant_args, work / "plant.log")
    sup: Supervisor | None = None
    try:
        await _wait_port(ODOO_PORT, odoo, "the Odoo sandbox")
        await _wait_port(PLANT_PORT, plant, "the sandbox plant")
        print(f"demo: sandbox Odoo on http://127.0.0.1:{ODOO_PORT} (database 'sandbox', admin/admin), "
              f"sandbox plant on 127.0.0.1:{PLANT_PORT}, state in {work}", flush=True)
        sup = Supervisor(cfg, work / "state")
        runner = asyncio.create_task(sup.run())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        final_seen: float | None = None
        last_print = time.monotonic()
        drain_deadline: float | None = None
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 0.25)
            except asyncio.TimeoutError:
                pass
            truth = _read_truth(truth_path)
            if time.monotonic() - last_print >= PROGRESS_EVERY:
                print(_progress(sup, truth), flush=True)
                last_print = time.monotonic()
            if runner.done():
                break
            if duration is None:
                continue
            if truth and truth.get("final") and final_seen is None:
                final_seen = time.time()
                drain_deadline = time.monotonic() + 60.0
            if final_seen is not None:
                # done once every device has pushed a reading taken after the plant
                # stopped through its rules into the store, and every sink drained it
                settled = all(p.last_handled_ts > final_seen for p in sup.pipelines.values())
                if settled and all(sup.store.backlog(n) == 0 for n in sup.sinks):
                    break
                if drain_deadline and time.monotonic() > drain_deadline:
                    print("demo: backlog did not drain within 60 s after the plant stopped", file=sys.stderr)
                    break
        status = sup.status()
        sup.stop()
        await runner
        truth = _read_truth(truth_path) or {}
        odoo_qty = await odoo_quantities(cfg)
        failed = sum(s["dead_lettered"] for s in status["sinks"].values()) + status["refused"]
        summary = {
            "stored": status["stored"],
            "delivered": {n: s["delivered"] for n, s in status["sinks"].items()},
            "dead_letters": sum(s["dead_lettered"] for s in status["sinks"].values()),
            "failed": failed,
            "ground_truth": truth,
            "odoo": odoo_qty,
        }
        parts = truth.get("machines", {}).get("CNC-01", {}).get("parts")
        got = odoo_qty.get("CNC-01", {}).get("qty_producing")
        match = parts is not None and got is not None and float(parts) == float(got)
        print(f"demo: done: stored={summary['stored']} delivered={summary['delivered']} "
              f"dead_letters={summary['dead_letters']} failed={failed}; plant made {parts} good parts, "
              f"Odoo work order shows {got}: {'MATCH' if match else 'MISMATCH'}", flush=True)
        if as_json:
            print(json.dumps(summary, sort_keys=True), flush=True)
        if duration is not None and (not match or failed):
            return 1
        return 0
    finally:
        for proc in (plant, odoo):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (plant, odoo):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def demo(duration: float | None = None, as_json: bool = False) -> int:
    with tempfile.TemporaryDirectory(prefix="linebridge-demo-") as tmp:
        try:
            return asyncio.run(_run(duration, as_json, Path(tmp)))
        except RuntimeError as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 1
