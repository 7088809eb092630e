"""Held events: what a sink set aside to wait for context, out of its other events' way.

A mixin of `store.queue.Store`. An event a sink cannot deliver yet for a reason
of its own lane (the Odoo sink: its work center has no open work order) is held:
`ack(..., hold=...)` copies it into the `held` database, keyed by sink and seq,
with its lane and the time it was held (the sink's clock), in the same
transaction that moves the sink's cursor past it. The sink's other lanes go on; its later events of the
same lane are held behind it, so a lane keeps its order. `held` gives a sink its
held events in seq order; `release` settles some of them in one transaction,
delivered or dead-lettered, with the journal entry and the sink state, exactly
as `ack` settles what `read` gave. Until released a held event is kept: the
copy in `held` does not depend on the event queues, which are pruned by cursor.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import lmdb

from store import counts
from store.layout import k as _k, seq_of as _seq


@dataclass(frozen=True)
class HeldEvent:
    """A held event: the event as read (`stored`), its lane, when it was first held and why."""

    stored: Any            # store.queue.Stored
    lane: str
    since: float
    reason: str


class Held:
    """Held-event operations of the store (see `store.queue.Store`)."""

    def _held_keys(self, txn: lmdb.Transaction, sink: str) -> Iterator[tuple[bytes, bytes]]:
        """(key, raw row) of `sink`'s held events, in seq order."""
        db = self._db.get("held")
        if db is None:          # a read-only view of a store no gateway of this version has opened yet
            return
        prefix = sink.encode() + b"\0"
        cur = txn.cursor(db=db)
        if cur.set_range(prefix):
            for key, value in cur:
                if not key.startswith(prefix):
                    break
                yield key, value

    def held(self, sink: str) -> list[HeldEvent]:
        """`sink`'s held events in seq order."""
        from store.queue import Stored
        with self._reading() as txn:
            rows = [(key, json.loads(raw)) for key, raw in self._held_keys(txn, sink)]
        return [HeldEvent(Stored(_seq(key[len(sink) + 1:]), row["event"], row["cls"]), row["lane"],
                          row["since"], row["reason"]) for key, row in rows]

    def held_count(self, txn: lmdb.Transaction, sink: str) -> int:
        """How many events `sink` holds: a kept counter (see `store.counts`), the pages poll this."""
        if txn.get(counts.MARKER, db=self._db["meta"]) is None:   # read-only view of an older store
            return sum(1 for _ in self._held_keys(txn, sink))
        return counts.get(txn, self._db["meta"], f"held:{sink}")

    def _hold(self, txn: lmdb.Transaction, sink: str, hold: list[tuple[Any, str, str, float]]) -> None:
        """Keep each (stored, lane, reason, since) of `hold` for `sink`; a replayed one leaves the replay queue."""
        for stored, lane, reason, since in hold:
            key = f"{sink}\0".encode() + _k(stored.seq)
            row = {"event": stored.event, "cls": stored.cls, "lane": lane, "since": since, "reason": reason}
            counts.put_row(txn, self._db, "held", key, json.dumps(row, sort_keys=True).encode())
            if stored.cls == "replay":
                counts.delete_row(txn, self._db, "replay", key)

    def release(self, sink: str, done: list[Any], state: Mapping[str, bytes] | None = None,
                dead: list[tuple[Any, str]] | None = None, receipts: Mapping[str, str] | None = None) -> None:
        """Settle held events `done` of `sink` (delivered, or given up on as `dead`) in one transaction."""
        def settle(txn: lmdb.Transaction) -> None:
            for stored in done:
                counts.delete_row(txn, self._db, "held", f"{sink}\0".encode() + _k(stored.seq))
            self._settle(txn, sink, done, state or {}, dead or [], receipts or {})
        self._write(settle)
