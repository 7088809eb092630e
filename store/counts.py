"""Status counters kept as the data changes, so every status figure costs the same at any backlog.

The store's `meta` database holds, per sink, how many dead letters, replays
and held events it has, and per sink and class how many stored events lie at
or behind its cursor (passed by it, kept for a slower sink). A sink's backlog
is then `entries(class) - behind(sink, class)` plus its replays and held
events: LMDB knows `entries` without scanning. Each write that adds or removes
such a row moves its counter in the same transaction, so a counter is exactly
as durable as the rows it counts.

`recount` rebuilds every counter by scanning, once, when a store written by an
older version is opened or a sink joins the routing table; tests compare the
kept counters with it after every kind of write.
"""
from __future__ import annotations

import struct
from typing import Iterable, Mapping

import lmdb

from store.layout import CLASSES, k, seq_of

#: meta key saying the counters below are kept (absent in stores of older versions)
MARKER = b"counts:v1"
_INT = struct.Struct(">q")
#: the databases whose rows are keyed `sink NUL seq` and counted per sink
COUNTED = ("dead", "replay", "held")


def _key(name: str) -> bytes:
    return b"n:" + name.encode("utf-8")


def get(txn: lmdb.Transaction, meta: lmdb._Database, name: str) -> int:
    raw = txn.get(_key(name), db=meta)
    return _INT.unpack(raw)[0] if raw else 0


def add(txn: lmdb.Transaction, meta: lmdb._Database, name: str, delta: int) -> None:
    if delta:
        txn.put(_key(name), _INT.pack(get(txn, meta, name) + delta), db=meta)


def rows_name(db: str, key: bytes) -> str:
    """The counter of the `sink NUL seq` row `key` in database `db` (dead, replay or held)."""
    sink = key.split(b"\0", 1)[0].decode("utf-8")
    return f"{db}:{sink}"


def behind_name(sink: str, cls: str) -> str:
    return f"behind:{sink}\0{cls}"


def put_row(txn: lmdb.Transaction, dbs: Mapping[str, lmdb._Database], db: str, key: bytes, value: bytes) -> None:
    """Write a counted row; a new key counts one more, an overwrite nothing."""
    if txn.replace(key, value, db=dbs[db]) is None:
        add(txn, dbs["meta"], rows_name(db, key), 1)


def delete_row(txn: lmdb.Transaction, dbs: Mapping[str, lmdb._Database], db: str, key: bytes) -> None:
    """Delete a counted row; only a row that was there counts one less."""
    if txn.delete(key, db=dbs[db]):
        add(txn, dbs["meta"], rows_name(db, key), -1)


def count_between(txn: lmdb.Transaction, events: lmdb._Database, low: int, high: int) -> int:
    """Stored events with `low < seq <= high` (the stretch a cursor just passed: one batch)."""
    if high <= low:
        return 0
    n = 0
    cur = txn.cursor(db=events)
    if cur.set_range(k(low + 1)):
        for key in cur.iternext(keys=True, values=False):
            if seq_of(key) > high:
                break
            n += 1
    return n


def recount(txn: lmdb.Transaction, dbs: Mapping[str, lmdb._Database], cursors: Mapping[tuple[str, str], int],
            sinks: Iterable[str] | None = None) -> None:
    """Rebuild the counters by scanning (all sinks', or only `sinks`' behind counts), and mark them kept."""
    meta = dbs["meta"]
    if sinks is None:
        for key in list(txn.cursor(db=meta).iternext(keys=True, values=False)):
            if key.startswith(b"n:"):
                txn.delete(key, db=meta)
        for db in COUNTED:
            if db not in dbs:
                continue
            tally: dict[str, int] = {}
            for key in txn.cursor(db=dbs[db]).iternext(keys=True, values=False):
                name = rows_name(db, key)
                tally[name] = tally.get(name, 0) + 1
            for name, n in tally.items():
                add(txn, meta, name, n)
    wanted = None if sinks is None else set(sinks)
    for (sink, cls), cursor in cursors.items():
        if cls not in CLASSES or (wanted is not None and sink not in wanted):
            continue
        name = behind_name(sink, cls)
        add(txn, meta, name, count_between(txn, dbs[f"ev:{cls}"], 0, cursor) - get(txn, meta, name))
    txn.put(MARKER, b"1", db=meta)
