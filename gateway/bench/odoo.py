"""`linebridge bench odoo`: batched delivery against one call per event, on a sandbox it starts.

With `--url` it measures a running Odoo instead (gateway/bench/odoo_live.py).

Both runs push `downtime_start` events through the real Odoo sink into an
in-memory Odoo sandbox running as its own process on loopback: the naive run takes one
event per delivery pass (one `load` per event), the batched run takes up to
`--batch` per pass (one `load` per batch). The ratio of the two rates is the
figure; a second measurement appends alarm events one by one to a running sink
and reports p50/p99 of the time from append to the acknowledgement that
follows the maintenance request's creation in Odoo.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway.config import OdooSinkConfig
from gateway.events import Event, event_id
from gateway.sinks.odoo.sink import OdooSink
from store.queue import Store

CTX = {"machine": "CNC-01", "work_center": "CNC-01", "equipment": "CNC-01"}


def _event(kind: str, n: int, data: dict[str, Any]) -> dict[str, Any]:
    return Event(id=event_id("bench", "cnc01/alarm", f"{kind}:{n}"), kind=kind, ts="2026-11-23T07:00:00.000Z",
                 gateway="bench", source={"device": "cnc01", "tag": "alarm"}, data=data,
                 context=dict(CTX)).to_dict()


async def _rate(url: str, root: Path, name: str, events: int, batch: int) -> float:
    store = Store(root / name, sinks=["odoo"])
    store.append([_event("downtime_start", i, {"code": 1}) for i in range(events)])
    cfg = OdooSinkConfig("odoo", url, "sandbox", "admin", "admin", timeout=30.0, batch_size=batch,
                         rate=100_000.0, max_in_flight=4)
    sink = OdooSink(cfg, store)
    t0 = time.perf_counter()
    while b := store.read("odoo", batch):
        await sink.deliver(b)
    elapsed = time.perf_counter() - t0
    await sink.raw_client.close()
    assert sink.stats.delivered == events, sink.stats
    store.close()
    return events / elapsed


async def _latency(url: str, root: Path, samples: int) -> list[float]:
    store = Store(root / "latency", sinks=["odoo"])
    cfg = OdooSinkConfig("odoo", url, "sandbox", "admin", "admin", timeout=30.0, rate=100_000.0)
    sink = OdooSink(cfg, store)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    out = []
    for i in range(samples):
        t0 = time.perf_counter()
        await asyncio.to_thread(store.append, [_event("alarm", i, {"code": 1000 + i})])
        sink.wake.set()
        while store.backlog("odoo"):
            await asyncio.sleep(0.0005)
        out.append((time.perf_counter() - t0) * 1000)
    stop.set()
    await task
    store.close()
    return out


def _start_sandbox() -> tuple[subprocess.Popen, str]:
    """The sandbox in its own process, as Odoo would be: it must not share our interpreter's GIL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "sandbox", "odoo", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the Odoo sandbox did not start")


def run(events: int = 2000, batch: int = 200, samples: int = 50) -> dict[str, Any]:
    proc, url = _start_sandbox()
    try:
        with tempfile.TemporaryDirectory(prefix="linebridge-bench-odoo-") as tmp:
            root = Path(tmp)
            naive_n = max(1, events // 10)
            naive = asyncio.run(_rate(url, root, "naive", naive_n, 1))
            batched = asyncio.run(_rate(url, root, "batched", events, batch))
            lat = sorted(asyncio.run(_latency(url, root, samples)))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
    return {"events": events, "batch": batch, "naive_events": naive_n,
            "naive_events_per_s": round(naive, 1), "batched_events_per_s": round(batched, 1),
            "ratio": round(batched / naive, 1),
            "alarm_to_request_p50_ms": round(statistics.median(lat), 1), "alarm_to_request_p99_ms": round(p99, 1)}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="linebridge bench odoo",
                                description="Without --url: batched against one call per event and alarm latency, on "
                                            "a sandbox it starts. With --url: events/s draining a mixed backlog and "
                                            "alarm -> maintenance request p95 against that Odoo (a test database: "
                                            "the bench writes to it).")
    p.add_argument("--json", action="store_true")
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--samples", type=int, default=None, help="alarm latency samples (default 50, with --url 20)")
    p.add_argument("--verbose", action="store_true", help="keep the sink's per-delivery log lines")
    p.add_argument("--url", help="a running Odoo (http://HOST:PORT)")
    p.add_argument("--database")
    p.add_argument("--login", default="admin")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--api-key")
    key.add_argument("--api-key-file", type=Path)
    p.add_argument("--protocol", default="auto", choices=("auto", "jsonrpc", "xmlrpc", "json2"))
    p.add_argument("--machine", default="CNC-01", help="work center code and equipment serial number in that Odoo")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per Odoo call")
    args = p.parse_args(argv)
    if not args.verbose:  # thousands of delivery lines would drown the figures
        logging.getLogger("linebridge").setLevel(logging.WARNING)
    if args.url:
        if not args.verbose:  # dead letters are counted in the figures; one line each would drown them
            logging.getLogger("linebridge").setLevel(logging.CRITICAL)
        if not args.database or not (args.api_key or args.api_key_file):
            p.error("--url needs --database and --api-key or --api-key-file")
        from gateway.bench.odoo_live import run as run_live
        api_key = args.api_key or args.api_key_file.read_text(encoding="utf-8").strip()
        cfg = OdooSinkConfig("odoo", args.url, args.database, args.login, api_key, protocol=args.protocol,
                             timeout=args.timeout, batch_size=args.batch)
        r = run_live(cfg, machine=args.machine, events=args.events, samples=args.samples or 20)
        if args.json:
            print(json.dumps(r, sort_keys=True))
            return 0
        print(f"{r['events']} mixed events drained in {r['seconds']} s: {r['events_per_s']} events/s "
              f"({r['delivered']} delivered, {r['dead_letters']} dead letters, {r['left']} left)")
        print(f"alarm stored -> maintenance request readable: p50 {r['alarm_p50_ms']} ms, "
              f"p95 {r['alarm_p95_ms']} ms, max {r['alarm_max_ms']} ms ({r['alarm_samples']} samples)")
        return 0
    r = run(args.events, args.batch, args.samples or 50)
    if args.json:
        print(json.dumps(r, sort_keys=True))
        return 0
    print(f"one call per event: {r['naive_events_per_s']} events/s; batched by {r['batch']}: "
          f"{r['batched_events_per_s']} events/s; ratio {r['ratio']}x")
    print(f"alarm append -> maintenance request created: p50 {r['alarm_to_request_p50_ms']} ms, "
          f"p99 {r['alarm_to_request_p99_ms']} ms")
    return 0
