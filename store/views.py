"""Inspection: sequence numbers, backlogs, statistics and the journal, for people and status pages.

A mixin of `store.queue.Store`; everything here only reads, so the CLI and
the web UI can use it on a store another process is writing.
"""
from __future__ import annotations

import json
from typing import Any

from store import counts, journal
from store.layout import CLASSES, Quota, k, seq_of


class Inspection:
    """Read-only views of the store (see `store.queue.Store`)."""

    def last_seq(self) -> int:
        with self._reading() as txn:
            raw = txn.get(b"next_seq", db=self._db["meta"])
            return (seq_of(raw) - 1) if raw else 0

    def backlog(self, sink: str) -> int:
        """Events waiting for `sink`: replays, held events, and its classes after its cursors.

        Read from counters kept as the data changes (`store.counts`): the same cost
        with an empty queue or a million events, and it never waits for the writer.
        """
        wanted = self.sinks.get(sink, frozenset({"business"}))
        with self._reading() as txn:
            meta = self._db["meta"]
            if txn.get(counts.MARKER, db=meta) is None:   # a read-only view of an older version's store
                return self._scan_backlog(txn, sink, wanted)
            n = counts.get(txn, meta, f"held:{sink}") + counts.get(txn, meta, f"replay:{sink}")
            for cls in CLASSES:
                if cls in wanted:
                    n += txn.stat(self._db[f"ev:{cls}"])["entries"] - counts.get(txn, meta, counts.behind_name(sink, cls))
            return n

    def _scan_backlog(self, txn: Any, sink: str, wanted: frozenset[str]) -> int:
        n = self.held_count(txn, sink) + sum(1 for _ in _rows(txn, self._db["replay"], sink))
        for cls in CLASSES:
            if cls in wanted:
                n += counts.count_between(txn, self._db[f"ev:{cls}"], self._cursor(txn, sink, cls), 2**63)
        return n

    def dead_count(self, txn: Any, sink: str) -> int:
        if txn.get(counts.MARKER, db=self._db["meta"]) is None:
            return sum(1 for _ in _rows(txn, self._db["dead"], sink))
        return counts.get(txn, self._db["meta"], f"dead:{sink}")

    def stats(self) -> dict[str, Any]:
        """Per class and sink: counts, bytes, oldest age, cursor lag, held events, dead letters, drops."""
        now = self.clock()
        with self._reading() as txn:
            classes = {}
            for cls in CLASSES:
                usage = self._usage(txn, cls)
                cur = txn.cursor(db=self._db[f"ev:{cls}"])
                oldest = None
                if cur.first():
                    ts = json.loads(cur.value()).get("ts")
                    oldest = _age(ts, now)
                quota = self.options.quotas.get(cls, Quota())
                evicted = txn.get(f"count:evicted:{cls}".encode(), db=self._db["meta"])
                classes[cls] = {"events": usage["events"], "bytes": usage["bytes"], "oldest_age_s": oldest,
                                "cap_events": quota.max_events, "cap_bytes": quota.max_bytes,
                                "evicted": seq_of(evicted) if evicted else 0}
            meta_next = txn.get(b"next_seq", db=self._db["meta"])
            last = (seq_of(meta_next) - 1) if meta_next else 0
            sinks = {}
            names = set(self.sinks) | {k.split(b"\0")[0].decode() for k, _ in txn.cursor(db=self._db["cursors"])}
            for sink in sorted(names):
                dead = self.dead_count(txn, sink)
                sinks[sink] = {"cursors": {c: self._cursor(txn, sink, c) for c in CLASSES},
                               "lag_seq": last - max(self._cursor(txn, sink, c) for c in CLASSES),
                               "dead_letters": dead, "held": self.held_count(txn, sink),
                               "classes": sorted(self.sinks.get(sink, ()))}
            unrouted = txn.get(b"count:unrouted", db=self._db["meta"])
            info = self.env.info()
        out = {"path": str(self.path), "last_seq": last, "classes": classes, "sinks": sinks,
               "unrouted": seq_of(unrouted) if unrouted else 0, "map_size": info["map_size"],
               "map_used": (info["last_pgno"] + 1) * self.env.stat()["psize"]}
        for sink in out["sinks"]:
            if sink in self.sinks:
                out["sinks"][sink]["backlog"] = self.backlog(sink)
        return out

    def stored_count(self) -> int:
        with self._reading() as txn:
            return sum(txn.stat(self._db[f"ev:{c}"])["entries"] for c in CLASSES)

    def verify_journal(self) -> journal.Verdict:
        """The chain checked from anchor to head, MACs too when the store holds the journal key."""
        with self._reading() as txn:
            return journal.verify(txn, self._db["journal"], self._db["meta"], self.options.journal_key)

    def journal_head(self) -> dict[str, Any]:
        """`n` and link (`hash`) of the newest journal entry, and the anchor's `n` (`first` - 1)."""
        with self._reading() as txn:
            top = journal.head(txn, self._db["meta"])
            return {"n": top["n"], "hash": top["hash"], "anchor": journal.anchor(txn, self._db["meta"])["n"]}

    def journal_link(self, n: int) -> str | None:
        """The link of journal entry `n` (kept or the anchor), None when pruned past or not written."""
        with self._reading() as txn:
            return journal.entry_link(txn, self._db["journal"], self._db["meta"], n)

    def journal_entries(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._reading() as txn:
            return journal.entries(txn, self._db["journal"], limit)


def _rows(txn: Any, db: Any, sink: str) -> Any:
    """Keys of `sink`'s rows in a `sink NUL seq` database, scanned (older stores only)."""
    prefix = sink.encode() + b"\0"
    cur = txn.cursor(db=db)
    if cur.set_range(prefix):
        for key in cur.iternext(keys=True, values=False):
            if not key.startswith(prefix):
                break
            yield key


def _age(ts: Any, now: float) -> float | None:
    if not isinstance(ts, str):
        return None
    from datetime import datetime
    try:
        return round(now - datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp(), 3)
    except ValueError:
        return None
