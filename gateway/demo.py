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
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from gateway import config as config_mod
from gateway import services as services_mod
from gateway.sinks.odoo.client import OdooClient
from gateway.supervisor import Supervisor

PLANT_PORT = 5020
ODOO_PORT = 8069
WEBUI_PORT = 8443
PROGRESS_EVERY = 3.0


def demo_config_text(mqtt: str | None = None, webui_port: int | None = None) -> str:
    """The bundled demo configuration; with `mqtt`, plus an MQTT sink to it and the heartbeat."""
    text = resources.files("gateway").joinpath("demo.toml").read_text(encoding="utf-8")
    if webui_port is not None:
        text += f"""
# The local console (HTTPS, certificate made on the first start, no default password).
[webui]
listen = "127.0.0.1"
port = {webui_port}
"""
    if mqtt is None:
        return text
    return text + f"""
# Every event, signed, to an upstream MQTT broker (QoS 1, acknowledged on PUBACK),
# on linebridge/demo/demo-gw/events/<kind>; see README.md, "MQTT sink".
[sinks.mqtt]
type = "mqtt"
url = "{mqtt}"
rate = 50.0               # messages per second at most when a backlog is flushed

# A retained status on linebridge/demo/demo-gw/status every 10 s; the broker's
# last will turns it to "offline" if the gateway dies.
[heartbeat]
sink = "mqtt"
interval = 10
"""


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen:
    """A sandbox in its own process group: a terminal's Ctrl-C (SIGINT to the foreground group) stops
    the demo only, which reads Odoo for its summary and then stops the sandboxes itself."""
    log = open(log_path, "wb")
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", *args], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


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


async def odoo_summary(cfg: config_mod.Config) -> dict[str, dict[str, Any]]:
    """What Odoo shows per mapped machine: work order quantity, scrap, downtimes, requests."""
    sink = next(iter(cfg.sinks_of(config_mod.OdooSinkConfig).values()))
    client = OdooClient(sink.url, sink.database, sink.login, sink.api_key, sink.timeout)
    out: dict[str, dict[str, Any]] = {}
    try:
        for machine, mapping in cfg.machines.items():
            wcs = await client.execute_kw("mrp.workcenter", "search", [[["code", "=", mapping.work_center]]])
            wos = await client.execute_kw("mrp.workorder", "search_read", [[["workcenter_id", "in", wcs]]],
                                          {"fields": ["qty_producing", "production_id"]})
            mos = sorted({w["production_id"][0] for w in wos if w.get("production_id")})
            scraps = await client.execute_kw("stock.scrap", "search_read",
                                             [[["production_id", "in", mos], ["state", "=", "done"]]],
                                             {"fields": ["scrap_qty", "product_id", "production_id", "origin"]})
            logs = await client.execute_kw("mrp.workcenter.productivity", "search_read",
                                           [[["workcenter_id", "in", wcs]]], {"fields": ["date_start", "date_end"]})
            closed = [lg for lg in logs if lg["date_end"]]
            seconds = sum((_odoo_ts(lg["date_end"]) - _odoo_ts(lg["date_start"])) for lg in closed)
            eq = await client.execute_kw("maintenance.equipment", "search",
                                         [[["serial_no", "=", mapping.equipment]]]) if mapping.equipment else []
            requests = await client.execute_kw("maintenance.request", "search_count",
                                               [[["equipment_id", "in", eq]]]) if eq else 0
            out[machine] = {"qty_producing": sum(float(w["qty_producing"]) for w in wos),
                            "scrap": await scrapped_parts(client, scraps),
                            "downtimes": len(closed), "open_downtimes": len(logs) - len(closed),
                            "downtime_seconds": round(seconds, 1), "maintenance_requests": requests}
    finally:
        await client.close()
    return out


async def scrapped_parts(client: OdooClient, scraps: list[dict[str, Any]]) -> float:
    """Bad parts that Odoo's validated scraps stand for, whatever the sink's `scrap_mode`.

    A finished-product scrap counts its quantity. With `scrap_mode = "components"`
    one bad part is one scrap per component of its order (Odoo's own MO scrap),
    all with the event's `origin`: that event counts once, its quantity read back
    from one component's scrap and that component's quantity per part.
    """
    mos = sorted({r["production_id"][0] for r in scraps if r.get("production_id")})
    finished: dict[int, int] = {}
    per_part: dict[tuple[int, int], float] = {}
    if mos:
        for mo in await client.execute_kw("mrp.production", "read", [mos],
                                           {"fields": ["product_id", "product_qty", "move_raw_ids"]}):
            finished[mo["id"]] = mo["product_id"][0]
            moves = await client.execute_kw("stock.move", "read", [mo["move_raw_ids"]],
                                            {"fields": ["product_id", "product_uom_qty"]}) if mo["move_raw_ids"] else []
            for m in moves:
                per_part[(mo["id"], m["product_id"][0])] = float(m["product_uom_qty"]) / (float(mo["product_qty"]) or 1.0)
    parts = 0.0
    by_event: dict[str, list[dict[str, Any]]] = {}
    for r in scraps:
        mo, product = (r.get("production_id") or [0])[0], r["product_id"][0]
        if product == finished.get(mo) or not r.get("origin"):
            parts += float(r["scrap_qty"])
        else:
            by_event.setdefault(r["origin"], []).append(r)
    for rows in by_event.values():
        row = min(rows, key=lambda r: r["product_id"][0])
        per = per_part.get((row["production_id"][0], row["product_id"][0])) or 1.0
        parts += round(float(row["scrap_qty"]) / per, 6)
    return parts


def _odoo_ts(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


def reconcile(truth: dict[str, Any], odoo: dict[str, dict[str, Any]], poll: float) -> list[str]:
    """Differences between the plant's ground truth and Odoo, in words; empty when they agree.

    Downtime lengths are measured by polling, so each edge may be late by up to
    one poll interval (plus Odoo's whole-second datetimes): the tolerance is
    two intervals and a second per alarm.
    """
    problems = []
    for machine, t in (truth.get("machines") or {}).items():
        o = odoo.get(machine)
        if o is None:
            problems.append(f"{machine}: not mapped to Odoo")
            continue
        if float(t["parts"]) != o["qty_producing"]:
            problems.append(f"{machine}: plant made {t['parts']} good parts, Odoo shows {o['qty_producing']}")
        if float(t["scrap"]) != o["scrap"]:
            problems.append(f"{machine}: plant scrapped {t['scrap']}, Odoo scrap orders hold {o['scrap']}")
        if t["alarms"] != o["downtimes"] or o["open_downtimes"]:
            problems.append(f"{machine}: plant had {t['alarms']} alarms, Odoo has {o['downtimes']} closed "
                            f"and {o['open_downtimes']} open downtimes")
        elif abs(t["alarm_seconds"] - o["downtime_seconds"]) > t["alarms"] * (2 * poll + 1.0):
            problems.append(f"{machine}: plant alarms lasted {t['alarm_seconds']:.1f} s, Odoo downtimes "
                            f"{o['downtime_seconds']:.1f} s")
    return problems


def _progress(sup: Supervisor, truth: dict[str, Any] | None) -> str:
    st = sup.status()
    sinks = " ".join(f"{n}: delivered={s['delivered']} failed={s['dead_lettered']} "
                     f"backlog={s['backlog']} state={s['state']}" for n, s in st["sinks"].items())
    parts = (truth or {}).get("machines", {}).get("CNC-01", {}).get("parts", "?")
    return (f"[{st['uptime']:6.1f}s] read={st['read']} events={st['events']} stored={st['stored']} "
            f"| {sinks} | plant parts={parts}{_oee_line(sup)}")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _oee_line(sup: Supervisor) -> str:
    """` | OEE CNC-01 early 71.2% (A 96.0% P 75.1% Q 98.8%)` for each machine's running shift."""
    return "".join(f" | OEE {m} {r['shift']} {_pct(r['oee'])} (A {_pct(r['availability'])} "
                   f"P {_pct(r['performance'])} Q {_pct(r['quality'])})"
                   for m, r in sup.oee_live(time.time()).items())


async def _run(duration: float | None, as_json: bool, work: Path, mqtt: str | None = None,
               webui_port: int | None = WEBUI_PORT) -> int:
    config_path = work / "linebridge.toml"  # a real file: the web UI edits it like on a gateway
    config_path.write_text(demo_config_text(mqtt, webui_port), encoding="utf-8")
    try:
        cfg = config_mod.load(config_path)
    except config_mod.ConfigError as exc:
        raise RuntimeError("; ".join(exc.problems)) from exc
    ports = [(PLANT_PORT, "plant"), (ODOO_PORT, "Odoo sandbox")]
    if webui_port is not None:
        ports.append((webui_port, "web UI"))
    for port, what in ports:
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
    services: list[services_mod.Service] = []
    try:
        await _wait_port(ODOO_PORT, odoo, "the Odoo sandbox")
        await _wait_port(PLANT_PORT, plant, "the sandbox plant")
        print(f"demo: sandbox Odoo on http://127.0.0.1:{ODOO_PORT} (database 'sandbox', admin/admin), "
              f"sandbox plant on 127.0.0.1:{PLANT_PORT}, state in {work}", flush=True)
        if mqtt:
            print(f"demo: MQTT to {mqtt}: events on linebridge/demo/{cfg.gateway.id}/events/<kind>, "
                  f"retained status on linebridge/demo/{cfg.gateway.id}/status, each machine's OEE retained on "
                  f"linebridge/demo/{cfg.gateway.id}/oee/<machine>/running (the shift so far, every 10 s), "
                  f".../oee/<machine> (the last shift) and .../oee/<machine>/day", flush=True)
        sup = Supervisor(cfg, work / "state")
        runner = asyncio.create_task(sup.run())
        services += services_mod.load(sup, config_path)
        await services_mod.start_all(services)
        for service in services:
            for line in service.banner:
                print(f"demo: {line}", flush=True)
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
        oee = sup.oee_live(time.time())
        await services_mod.stop_all(services)
        sup.stop()
        await runner
        truth = _read_truth(truth_path) or {}
        odoo_view = await odoo_summary(cfg)
        failed = sum(s["dead_lettered"] for s in status["sinks"].values()) + status["refused"]
        summary = {
            "stored": status["stored"],
            "delivered": {n: s["delivered"] for n, s in status["sinks"].items()},
            "dead_letters": sum(s["dead_lettered"] for s in status["sinks"].values()),
            "failed": failed,
            "ground_truth": truth,
            "odoo": odoo_view,
            "oee": oee,
        }
        poll = max(d.config.poll_interval for d in cfg.devices.values())
        problems = reconcile(truth, odoo_view, poll) if truth.get("final") else ["the plant did not finish"]
        o = odoo_view.get("CNC-01", {})
        t = truth.get("machines", {}).get("CNC-01", {})
        print(f"demo: done: stored={summary['stored']} delivered={summary['delivered']} "
              f"dead_letters={summary['dead_letters']} failed={failed}", flush=True)
        print(f"demo: plant: {t.get('parts')} good parts, {t.get('scrap')} scrap, {t.get('alarms')} alarms "
              f"({t.get('alarm_seconds', 0):.1f} s); Odoo: qty_producing {o.get('qty_producing')}, "
              f"scrap {o.get('scrap')}, {o.get('downtimes')} downtimes ({o.get('downtime_seconds')} s), "
              f"{o.get('maintenance_requests')} maintenance request(s)", flush=True)
        for machine, r in oee.items():
            print(f"demo: OEE {machine} shift {r['shift']} so far: {_pct(r['oee'])} = availability "
                  f"{_pct(r['availability'])} x performance {_pct(r['performance'])} x quality {_pct(r['quality'])} "
                  f"({r['good']:g} good, {r['scrap']:g} scrap, {r['downtime_s']:.1f} s down in "
                  f"{r['planned_s']:.1f} s planned, ideal cycle {r['ideal_cycle_s']} s)", flush=True)
        if duration is not None:
            print("demo: " + ("MATCH: Odoo agrees with the plant" if not problems
                              else "MISMATCH: " + "; ".join(problems)), flush=True)
        else:
            print("demo: stopped while the plant was running: its counts are from its last report (every "
                  "0.5 s) and the gateway's last poll may differ from it; `linebridge demo --duration 30` "
                  "stops the plant, drains the backlog and compares exactly", flush=True)
        if as_json:
            print(json.dumps(summary, sort_keys=True), flush=True)
        if duration is not None and (problems or failed):
            return 1
        return 0
    finally:
        await services_mod.stop_all(services)
        for proc in (plant, odoo):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (plant, odoo):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def demo(duration: float | None = None, as_json: bool = False, mqtt: str | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="linebridge-demo-") as tmp:
        try:
            return asyncio.run(_run(duration, as_json, Path(tmp), mqtt))
        except RuntimeError as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 1
