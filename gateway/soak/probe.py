"""A cheap look into the running gateway's store from another process, read-only.

It owns the figures the soak samples every second or two while the gateway
runs: the last sequence number given (every event that ever went through the
store), the events held now per class (the backlog of the slowest sink), and
the oldest sequence number still held per class (everything before it was
acknowledged by every sink that wants it). Each is O(1): the store's metadata
and the first key of each class, never a scan.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import lmdb

from store.layout import CLASSES, seq_of


@dataclass(frozen=True)
class StoreFigures:
    last_seq: int
    held: dict[str, int]          # events stored now, per class
    oldest: dict[str, int | None]  # first seq still stored, per class

    @property
    def backlog(self) -> int:
        return sum(self.held.values())

    def drained_through(self, seq: int) -> bool:
        """Every event up to `seq` has left the store (delivered to every sink or dead-lettered)."""
        return all(o is None or o > seq for o in self.oldest.values())


def look(store_dir: Path) -> StoreFigures | None:
    """The figures now, or None while there is no store yet (or it cannot be read this instant)."""
    if not (store_dir / "data.mdb").exists():
        return None
    try:
        env = lmdb.open(str(store_dir), readonly=True, lock=True, max_dbs=16, subdir=True)
    except lmdb.Error:
        return None
    try:
        with env.begin() as txn:
            meta = env.open_db(b"meta", txn=txn, create=False)
            raw = txn.get(b"next_seq", db=meta)
            last = seq_of(raw) - 1 if raw else 0
            held: dict[str, int] = {}
            oldest: dict[str, int | None] = {}
            for cls in CLASSES:
                usage = txn.get(f"usage:{cls}".encode(), db=meta)
                held[cls] = int(json.loads(usage)["events"]) if usage else 0
                db = env.open_db(f"ev:{cls}".encode(), txn=txn, create=False)
                cur = txn.cursor(db=db)
                oldest[cls] = seq_of(cur.key()) if cur.first() else None
        return StoreFigures(last, held, oldest)
    except (lmdb.Error, ValueError, KeyError):
        return None
    finally:
        env.close()
