"""`linebridge bench odoo --url`: the Odoo sink's throughput and alarm latency against a running Odoo.

It owns two measurements through the real Odoo sink (`OdooSink.run`, as the
gateway runs it) against any Odoo database whose master data maps the bench
machine (a work center with its code, an open work order there, the equipment
with that serial number, the loss reasons and the scrap location, as `linebridge
odoo check` asks; use a test database, the bench writes to it):

- `events_per_s`: a backlog mixed like the demo plant's (per 8 s of a machine:
  ~16 production polls, 1-2 scrap, one alarm with its downtime start and end)
  is stored first, then drained; events per second from the sink's start to
  an empty backlog. Dead letters count as drained and are reported apart.
- `alarm_p95_ms` (and p50, max): while production events keep flowing (one
  every `--production-interval` s), an alarm with a code no run used before is stored every
  `--alarm-interval` s; the time from its append to the moment its
  maintenance request is readable in Odoo (its external id `linebridge.<event
  id>`, polled over a separate connection) is one sample.

The drain also reports its Odoo calls per `model.method` (count, seconds), so
a slow drain names the operation that costs.
"""
from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from gateway.config import OdooSinkConfig
from gateway.events import Event, event_id, iso_utc
from gateway.sinks.odoo.protocol import LazyClient
from gateway.sinks.odoo.sink import OdooSink
from store.queue import Store


class Feed:
    """Events of one bench machine with a fresh source, so every run's ids are new to Odoo."""

    def __init__(self, machine: str) -> None:
        self.ctx = {"machine": machine, "work_center": machine, "equipment": machine}
        self.run = uuid.uuid4().hex[:8]
        self.n = 0
        self.total = 0

    def event(self, kind: str, tag: str, data: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        return Event(id=event_id("bench", f"bench/{tag}", f"{self.run}:{self.n}"), kind=kind, ts=iso_utc(time.time()),
                     gateway="bench", source={"device": "bench", "tag": tag}, data=data,
                     context=dict(self.ctx)).to_dict()

    def production(self, qty: int = 1) -> dict[str, Any]:
        self.total += qty
        return self.event("production", "parts", {"quantity": qty, "counter": self.total, "total": self.total,
                                                  "reset": 0})

    def mixed(self, n: int, rng: random.Random) -> list[dict[str, Any]]:
        """About `n` events in the demo plant's proportions."""
        out: list[dict[str, Any]] = []
        code = 101
        while len(out) < n:
            for _ in range(16):
                out.append(self.production(rng.choice((1, 1, 2))))
            for _ in range(rng.choice((1, 2))):
                out.append(self.event("scrap", "scrap", {"quantity": 1, "counter": 1, "total": 1, "reset": 0}))
            out.append(self.event("alarm", "alarm", {"code": code, "state": "raised"}))
            start = self.event("downtime_start", "alarm", {"code": code})
            out.append(start)
            out.append(self.event("downtime_end", "alarm", {"code": code, "start_event_id": start["id"],
                                                            "started": start["ts"], "duration_s": 3.0}))
            code = 101 + (code - 100) % 5
        return out


class Timed:
    """An Odoo client that adds up, per `model.method`, how many calls were made and their seconds."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: dict[str, list[float]] = {}

    async def execute_kw(self, model: str, method: str, args: list[Any],
                         kwargs: dict[str, Any] | None = None) -> Any:
        t0 = time.perf_counter()
        try:
            return await self.inner.execute_kw(model, method, args, kwargs)
        finally:
            tally = self.calls.setdefault(f"{model}.{method}", [0, 0.0])
            tally[0] += 1
            tally[1] += time.perf_counter() - t0

    def report(self) -> dict[str, dict[str, float]]:
        """`model.method` -> calls, seconds, ms per call; the costliest first."""
        return {name: {"calls": n, "seconds": round(s, 2), "ms_per_call": round(1000 * s / n, 1)}
                for name, (n, s) in sorted(self.calls.items(), key=lambda kv: -kv[1][1])}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _drain(cfg: OdooSinkConfig, root: Path, events: list[dict[str, Any]], timeout: float) -> dict[str, Any]:
    store = Store(root / "drain", sinks=["odoo"])
    store.append(events)
    sink = OdooSink(cfg, store)
    timed = sink.client.inner = Timed(sink.client.inner)
    stop = asyncio.Event()
    t0 = time.perf_counter()
    task = asyncio.create_task(sink.run(stop))
    deadline = time.monotonic() + timeout
    while store.backlog("odoo") and time.monotonic() < deadline and not task.done():
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - t0
    left = store.backlog("odoo")
    stop.set()
    await task
    stats = sink.stats
    await sink.raw_client.close()
    store.close()
    return {"events": len(events), "seconds": round(elapsed, 2), "left": left,
            "events_per_s": round((len(events) - left) / elapsed, 1),
            "delivered": stats.delivered, "dead_letters": stats.dead_lettered, "calls": timed.report()}


async def _alarms(cfg: OdooSinkConfig, root: Path, machine: str, samples: int, alarm_every: float,
                  production_every: float, timeout: float) -> list[float]:
    store = Store(root / "alarms", sinks=["odoo"])
    sink = OdooSink(cfg, store)
    # a second connection, as a person looking at Odoo
    reader = LazyClient(cfg.url, cfg.database, cfg.login, cfg.api_key, cfg.timeout, cfg.protocol)
    feed = Feed(machine)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))

    async def produce() -> None:
        while not stop.is_set():
            await asyncio.to_thread(store.append, [feed.production()])
            sink.wake.set()
            await asyncio.sleep(production_every)

    producer = asyncio.create_task(produce())
    out: list[float] = []
    # codes no earlier run used: an open request of the same code would take the alarm without a new record
    base = 10_000 + random.randrange(10**6) * 1000
    try:
        for i in range(samples):
            ev = feed.event("alarm", "alarm", {"code": base + i, "state": "raised"})
            t0 = time.perf_counter()
            await asyncio.to_thread(store.append, [ev])
            sink.wake.set()
            name = ev["id"]
            while True:
                found = await reader.execute_kw("ir.model.data", "search_count",
                                                [[["module", "=", "linebridge"], ["name", "=", name],
                                                  ["model", "=", "maintenance.request"]]])
                if found:
                    break
                if time.perf_counter() - t0 > timeout:
                    raise RuntimeError(f"alarm {name} had no maintenance request after {timeout} s")
                await asyncio.sleep(0.02)
            out.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(alarm_every)
    finally:
        stop.set()
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        await task
        await reader.close()
        await sink.raw_client.close()
        store.close()
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def run(cfg: OdooSinkConfig, *, machine: str = "CNC-01", events: int = 2000, samples: int = 20,
        alarm_every: float = 0.5, production_every: float = 0.1, timeout: float = 600.0,
        seed: int = 1) -> dict[str, Any]:
    """Both measurements against `cfg`'s Odoo; one dict of figures."""
    with tempfile.TemporaryDirectory(prefix="linebridge-bench-odoo-") as tmp:
        root = Path(tmp)
        backlog = Feed(machine).mixed(events, random.Random(seed))
        drain = asyncio.run(_drain(cfg, root, backlog, timeout))
        lat = asyncio.run(_alarms(cfg, root, machine, samples, alarm_every, production_every, 60.0))
    return {"url": cfg.url, "database": cfg.database, "protocol": cfg.protocol, **drain,
            "alarm_samples": len(lat), "alarm_p50_ms": round(statistics.median(lat), 1),
            "alarm_p95_ms": round(pct(lat, 0.95), 1), "alarm_max_ms": round(max(lat), 1)}
