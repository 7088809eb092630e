"""`linebridge bench store`: durable append, read+ack and disk use, against SQLite in the same run.

The baseline is what a user would otherwise pick: SQLite from the standard
library in WAL mode with synchronous=FULL, one transaction per batch, an
integer-primary-key table of JSON bodies, in a temporary directory on the same
disk. Both sides serialise the same events; figures are reported with their
ratio because absolute numbers on a shared machine mean little. The floor is
raw LMDB: each event encoded as the store encodes it (as the SQLite side
encodes its rows) and put with one cursor in key order, the same batch,
synced the same way (`sync`, `metasync`): the store's own work per event
(dedupe, counters, quotas) is what separates the two. The same puts of bytes
encoded beforehand are reported too (`raw_lmdb_puts_only_*`): that floor
leaves the JSON encoding (about 6 us per event here) on the store's side. The three are measured
in interleaved rounds (store, raw LMDB, SQLite, each on a fresh file) and each
ratio is the median of the rounds' ratios, so a burst of load on a shared
machine hits a round, not one side. Event ids are made as the gateway makes
them (`gateway.events.event_id`: a hash, so they arrive in random key order).

The events are signed and the journal keyed, as on a gateway; read + ack goes
through the sinks' signature check (`gateway.sinks.screen`), and the cost of
that check alone (Ed25519 verify over the canonical form) is measured on its
own, per event.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lmdb

from gateway.events import event_id
from gateway.signing import DeviceKey, verify
from gateway.sinks.common import SinkStats
from gateway.sinks.screen import Screen
from store.layout import k
from store.queue import Store, StoreOptions, encode


def _events(n: int, size: int, start: int = 0) -> list[dict[str, Any]]:
    base = {"kind": "production", "ts": "2026-11-28T03:00:00.000Z", "gateway": "bench",
            "source": {"device": "cnc01", "tag": "parts"}, "context": {"machine": "CNC-01"}}
    probe = json.dumps(dict(base, id="evt_" + "0" * 32, data={"quantity": 1, "pad": ""}))
    pad = "x" * max(0, size - len(probe))
    return [dict(base, id=event_id("bench", "cnc01/parts", str(start + i)), data={"quantity": 1, "pad": pad})
            for i in range(n)]


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def _store_round(root: Path, evs: list[dict[str, Any]], batch: int, key: DeviceKey,
                 map_size: int) -> tuple[Store, float]:
    store = Store(root, sinks=["bench"], options=StoreOptions(map_size=map_size, journal_key=key.journal_key()))
    t0 = time.perf_counter()
    for i in range(0, len(evs), batch):
        store.append(evs[i:i + batch])
    return store, _rate(len(evs), time.perf_counter() - t0)


def _raw_lmdb_round(root: Path, evs: list[dict[str, Any]], batch: int, map_size: int,
                    encoded: list[bytes] | None = None) -> float:
    """Raw LMDB, synced like the store: each event encoded as the store encodes it (`encode`, as the SQLite
    side encodes its rows) and put with one cursor in key order. With `encoded`, those bytes made beforehand:
    the puts alone."""
    env = lmdb.open(str(root), map_size=map_size, max_dbs=2, subdir=True, sync=True, metasync=True)
    db = env.open_db(b"events")
    t0 = time.perf_counter()
    for i in range(0, len(evs), batch):
        rows = [(k(seq), encoded[seq - 1] if encoded else encode(ev, seq))
                for seq, ev in enumerate(evs[i:i + batch], i + 1)]
        with env.begin(write=True) as txn:
            txn.cursor(db=db).putmulti(rows, append=True)
    rate = _rate(len(evs), time.perf_counter() - t0)
    env.close()
    return rate


def _sqlite_round(path: Path, evs: list[dict[str, Any]], batch: int) -> tuple[sqlite3.Connection, float]:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    t0 = time.perf_counter()
    for i in range(0, len(evs), batch):
        rows = [(json.dumps(e, sort_keys=True, separators=(",", ":")).encode(),) for e in evs[i:i + batch]]
        con.execute("BEGIN")
        con.executemany("INSERT INTO events (body) VALUES (?)", rows)
        con.execute("COMMIT")
    return con, _rate(len(evs), time.perf_counter() - t0)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def run(events: int = 100_000, batch: int = 100, size: int = 256, workdir: Path | None = None,
        rounds: int = 3) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="linebridge-bench-", dir=workdir) as tmp:
        root = Path(tmp)
        key = DeviceKey.load_or_create(root / "state")
        evs = [key.sign(e) for e in _events(events, size)]
        bodies = [encode(ev, seq) for seq, ev in enumerate(evs, 1)]
        map_size = max(64 << 20, events * size * 4)
        stores: list[float] = []
        raws: list[float] = []
        puts: list[float] = []
        sqlites: list[float] = []
        con: sqlite3.Connection | None = None
        for r in range(max(1, rounds)):
            if r:
                store.close()
            store, rate = _store_round(root / f"lmdb{r}", evs, batch, key, map_size)
            stores.append(rate)
            raws.append(_raw_lmdb_round(root / f"raw{r}", evs, batch, map_size))
            puts.append(_raw_lmdb_round(root / f"puts{r}", evs, batch, map_size, bodies))
            if con is not None:
                con.close()
            con, rate = _sqlite_round(root / f"baseline{r}.db", evs, batch)
            sqlites.append(rate)
        disk = (root / f"lmdb{len(stores) - 1}" / "data.mdb").stat().st_size
        bytes_per_event = store.stats()["map_used"] / events

        sample = [s.event for s in store.read("bench", min(events, 10_000))]
        t0, c0 = time.perf_counter(), time.process_time()   # CPU time too: wall time on a busy box lies
        assert all(verify(ev, key.public) is None for ev in sample)
        verify_us = (time.perf_counter() - t0) / len(sample) * 1e6
        verify_cpu_us = (time.process_time() - c0) / len(sample) * 1e6

        screen = Screen("bench", key.public, SinkStats())
        t0 = time.perf_counter()
        done = 0
        while b := screen.read(store, batch):
            store.ack("bench", b)
            done += len(b)
        read_ack = _rate(done, time.perf_counter() - t0)

        singles = _events(max(1, events // 20), size, start=events)
        t0 = time.perf_counter()
        for ev in singles:
            store.append([ev])
        single = _rate(len(singles), time.perf_counter() - t0)
        store.close()

        assert con is not None
        t0 = time.perf_counter()
        for e in singles:
            con.execute("BEGIN")
            con.execute("INSERT INTO events (body) VALUES (?)",
                        (json.dumps(e, sort_keys=True, separators=(",", ":")).encode(),))
            con.execute("COMMIT")
        sqlite_single = _rate(len(singles), time.perf_counter() - t0)
        con.close()
    return {
        "events": events, "batch": batch, "size": size, "rounds": len(stores),
        "durable_events_per_s": round(_median(stores)), "single_events_per_s": round(single),
        "read_ack_events_per_s": round(read_ack), "bytes_per_event": round(bytes_per_event, 1),
        "verify_us_per_event": round(verify_us, 1), "verify_cpu_us_per_event": round(verify_cpu_us, 1),
        "verify_share_of_read_ack": round(verify_us * read_ack / 1e6, 3),
        "file_bytes": disk,
        "sqlite_events_per_s": round(_median(sqlites)), "sqlite_single_events_per_s": round(sqlite_single),
        "raw_lmdb_events_per_s": round(_median(raws)), "raw_lmdb_puts_only_events_per_s": round(_median(puts)),
        "ratio": round(_median([s / q for s, q in zip(stores, sqlites)]), 2),
        "raw_lmdb_ratio": round(_median([s / q for s, q in zip(stores, raws)]), 2),
        "raw_lmdb_puts_only_ratio": round(_median([s / q for s, q in zip(stores, puts)]), 2),
        "single_ratio": round(single / sqlite_single, 2),
        "cpus": os.cpu_count(),
    }


def _poll_lateness(store: Store, seconds: float, period: float = 0.01, status_every: float = 0.05) -> list[float]:
    """How late a 10 ms poll loop wakes while the same event loop asks the store for status.

    The gateway's loop does both: drivers poll on it and the watchdog's status
    line, the overview and the heartbeat read backlogs. Returns each wake-up's
    lateness in seconds.
    """
    import asyncio

    async def go() -> list[float]:
        late: list[float] = []
        stop = time.monotonic() + seconds

        async def status() -> None:
            while time.monotonic() < stop:
                store.backlog("odoo")
                store.backlog("mqtt")
                store.stats()
                await asyncio.sleep(status_every)

        task = asyncio.get_running_loop().create_task(status())
        due = time.monotonic() + period
        while due < stop:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            late.append(max(0.0, time.monotonic() - due))
            due += period
        await task
        return late

    return asyncio.run(go())


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run_status(queued: int = 1_000_000, seconds: float = 5.0, size: int = 256,
               workdir: Path | None = None) -> dict[str, Any]:
    """The cost of a status call with `queued` events waiting, and poll jitter against an empty store."""
    with tempfile.TemporaryDirectory(prefix="linebridge-bench-", dir=workdir) as tmp:
        root = Path(tmp)
        routes = {"odoo": {"business"}, "mqtt": {"business", "telemetry"}}
        empty = Store(root / "empty", routes)
        empty_late = _poll_lateness(empty, seconds)
        empty_cost = _call_cost(empty)
        empty.close()
        full = Store(root / "full", routes, options=StoreOptions(map_size=max(64 << 20, queued * size * 3),
                                                                  max_map_size=max(1 << 30, queued * size * 4)))
        chunk = 5000
        for i in range(0, queued, chunk):
            full.append(_events(min(chunk, queued - i), size, start=i))
        full.ack("mqtt", full.read("mqtt", 1000))     # two sinks at different places
        full_cost = _call_cost(full)
        full_late = _poll_lateness(full, seconds)
        backlog = full.backlog("odoo")
        full.close()
    p99_empty, p99_full = _pct(empty_late, 0.99), _pct(full_late, 0.99)
    return {"status_queued": backlog,
            "status_call_ms_empty": round(empty_cost * 1000, 3), "status_call_ms": round(full_cost * 1000, 3),
            "poll_p99_ms_empty": round(p99_empty * 1000, 2), "poll_p99_ms_queued": round(p99_full * 1000, 2),
            "poll_p99_ratio": round(p99_full / p99_empty, 2) if p99_empty else None}


def _call_cost(store: Store, rounds: int = 500) -> float:
    """Median seconds of one status call: both sinks' backlogs and the statistics."""
    costs = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        store.backlog("odoo")
        store.backlog("mqtt")
        store.stats()
        costs.append(time.perf_counter() - t0)
    return _pct(costs, 0.5)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="linebridge bench store")
    p.add_argument("--json", action="store_true")
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--size", type=int, default=256, help="bytes per event (JSON)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of store, raw LMDB and SQLite")
    p.add_argument("--status-queued", type=int, default=1_000_000,
                   help="events queued for the status-cost and poll-jitter figures (0: leave them out)")
    args = p.parse_args(argv)
    r = run(args.events, args.batch, args.size, rounds=args.rounds)
    if args.status_queued:
        r |= run_status(args.status_queued, size=args.size)
    if args.json:
        print(json.dumps(r, sort_keys=True))
        return 0
    print(f"durable appends, batch {r['batch']}: {r['durable_events_per_s']:>9} events/s   "
          f"SQLite WAL FULL: {r['sqlite_events_per_s']:>9} events/s   ratio {r['ratio']}x")
    print(f"raw LMDB (encode + put), same batch and sync: {r['raw_lmdb_events_per_s']:>9} events/s   "
          f"store/raw {r['raw_lmdb_ratio']}x (medians of {r['rounds']} interleaved rounds)")
    print(f"raw LMDB puts of bytes encoded beforehand: {r['raw_lmdb_puts_only_events_per_s']:>9} events/s   "
          f"store/puts {r['raw_lmdb_puts_only_ratio']}x")
    print(f"durable appends, one by one: {r['single_events_per_s']:>9} events/s   "
          f"SQLite: {r['sqlite_single_events_per_s']:>9} events/s   ratio {r['single_ratio']}x")
    print(f"read + ack, signatures checked: {r['read_ack_events_per_s']} events/s; "
          f"{r['bytes_per_event']} bytes per event on disk")
    print(f"signature check alone: {r['verify_us_per_event']} us per event, {r['verify_cpu_us_per_event']} us "
          f"of CPU ({100 * r['verify_share_of_read_ack']:.0f}% of read + ack)")
    if "status_call_ms" in r:
        print(f"status call (two backlogs + stats) with {r['status_queued']} queued: {r['status_call_ms']} ms "
              f"(empty store: {r['status_call_ms_empty']} ms)")
        print(f"10 ms poll loop, p99 lateness: {r['poll_p99_ms_queued']} ms with that backlog, "
              f"{r['poll_p99_ms_empty']} ms empty (ratio {r['poll_p99_ratio']})")
    return 0
