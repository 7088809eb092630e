"""Intake duplicate suppression by event id: an index on disk, written a few key ranges at a time.

Layout (named databases of the store's environment):

- `dedupe`      16-byte digest of the event id -> b"": every id known and not yet expired
- `dedupe_log`  8-byte seq of an append's first event -> the digests that append added, 16 bytes each
- `dedupe_exp`  8-byte expiry (ms) + 8-byte seq -> b"": when each log row expires

Why not put each id into `dedupe` as it comes: the gateway's ids are hashes,
so each insert lands on its own page of the index and a batch of 100 events
dirtied about 100 pages there against about 11 for the events themselves
(profiled: 5.5 kB written per event against 0.9 kB without those inserts). An
append instead writes one log row and one expiry row, both in key order, and
keeps the new digests in memory (`recent`, split into 256 slots by their first
byte, which are also 256 neighbouring ranges of the index); every transaction
then moves a few slots into `dedupe`, so it touches a few neighbouring pages.
An id is known (durably) once its log row is committed: a reopened store
reads back into memory every log row from the merge watermark on, which covers
every id the sweep may not have moved yet.

The sweep goes round the 256 slots; when it comes back to slot 0, every id
logged before the round began has been moved, and that seq becomes the
watermark. In-memory changes of a transaction are staged (`Pending`) and
applied only once it committed, so an aborted append (a full map, a business
backlog at its cap) leaves memory as the disk is. Memory holds about
`RECENT` digests (≈ 75 bytes each).

A 16-byte BLAKE2b digest stands for the id: two ids share one with odds of
about n²/2^129 (for 10^8 ids, 10^-23).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Mapping

import lmdb

from store.layout import k, seq_of

SLOTS = 256
#: digests the sweep keeps in memory at most (about: up to one append more)
RECENT = 32768
#: meta keys: the layout marker, and the seq below which every logged id is in `dedupe`
MARKER = b"dedupe:digests"
WATERMARK = b"dedupe:merged"
_DIGEST = 16


def digest(event_id: str) -> bytes:
    return hashlib.blake2b(event_id.encode("utf-8"), digest_size=_DIGEST).digest()


@dataclass
class Pending:
    """What one write transaction changed in memory; `Dedupe.apply` it once the transaction committed."""

    slot: int
    credit: float
    added: set[bytes] = field(default_factory=set)
    dropped: set[bytes] = field(default_factory=set)
    merged: list[tuple[int, list[bytes]]] = field(default_factory=list)
    cycle_start: int | None = None


class Dedupe:
    """The intake dedupe of one store (its databases in `dbs`); one writer process, calls under the store's lock."""

    def __init__(self, dbs: Mapping[str, lmdb._Database]) -> None:
        self.index, self.log, self.expiry, self.meta = dbs["dedupe"], dbs["dedupe_log"], dbs["dedupe_exp"], dbs["meta"]
        self.recent: list[set[bytes]] = [set() for _ in range(SLOTS)]
        self.slot = 0
        self.credit = 0.0          # slots the sweep owes: RECENT new ids pay one round of SLOTS
        self.cycle_start = 0

    def open(self, txn: lmdb.Transaction, next_seq: int) -> None:
        """Adopt the store: convert an older layout once, then read the unmerged log rows into memory."""
        if txn.get(MARKER, db=self.meta) is None:
            _convert(txn, self.index, self.expiry, self.log)
            txn.put(WATERMARK, k(next_seq), db=self.meta)
            txn.put(MARKER, b"1", db=self.meta)
        raw = txn.get(WATERMARK, db=self.meta)
        cur = txn.cursor(db=self.log)
        if cur.set_range(raw or k(0)):
            for value in cur.iternext(keys=False, values=True):
                for d in _split(bytes(value)):
                    self.recent[d[0]].add(d)
        self.cycle_start = next_seq

    def begin(self) -> Pending:
        return Pending(self.slot, self.credit)

    def known(self, txn: lmdb.Transaction, pending: Pending, d: bytes) -> bool:
        if d in pending.added:
            return True
        if d in pending.dropped:        # expired earlier in this transaction
            return False
        return d in self.recent[d[0]] or txn.get(d, db=self.index) is not None

    def add(self, txn: lmdb.Transaction, pending: Pending, first_seq: int, expiry_ms: int,
            digests: list[bytes]) -> None:
        """Log `digests` (an append whose first event got `first_seq`), then sweep a few slots into the index."""
        if not digests:
            return
        txn.put(k(first_seq), b"".join(digests), db=self.log, append=True)
        txn.put(k(expiry_ms) + k(first_seq), b"", db=self.expiry)
        pending.added.update(digests)
        pending.credit += SLOTS * len(digests) / RECENT
        while pending.credit >= 1.0:
            pending.credit -= 1.0
            slot = pending.slot
            moving = sorted(self.recent[slot] - pending.dropped)
            if moving:
                txn.cursor(db=self.index).putmulti([(d, b"") for d in moving])
                pending.merged.append((slot, moving))
            pending.slot = (slot + 1) % SLOTS
            if pending.slot == 0:          # a round is complete: all logged before it began is in the index
                txn.put(WATERMARK, k(self.cycle_start), db=self.meta)
                pending.cycle_start = first_seq

    def prune(self, txn: lmdb.Transaction, pending: Pending, now_ms: int, limit: int) -> None:
        """Forget the ids of up to about `limit` expired log rows (whole rows)."""
        cur = txn.cursor(db=self.expiry)
        limit_key = k(now_ms)
        n = 0
        while n < limit and cur.first() and bytes(cur.key()[:8]) < limit_key:
            row = bytes(cur.key()[8:])
            gone = _split(bytes(txn.pop(row, db=self.log) or b""))
            for d in gone:
                txn.delete(d, db=self.index)
                pending.dropped.add(d)
                pending.added.discard(d)
            cur.delete()
            n += max(1, len(gone))

    def apply(self, pending: Pending) -> None:
        """The committed transaction's changes, into memory."""
        recent = self.recent
        for slot, moved in pending.merged:
            recent[slot].difference_update(moved)
        for d in pending.dropped:
            recent[d[0]].discard(d)
        for d in pending.added:         # after the drops: an id expired and appended again in one transaction
            recent[d[0]].add(d)
        self.slot = pending.slot
        self.credit = pending.credit
        if pending.cycle_start is not None:
            self.cycle_start = pending.cycle_start

    def size(self) -> int:
        return sum(len(s) for s in self.recent)


def _split(value: bytes) -> list[bytes]:
    return [bytes(value[i:i + _DIGEST]) for i in range(0, len(value), _DIGEST)]


def _convert(txn: lmdb.Transaction, index: lmdb._Database, expiry: lmdb._Database, log: lmdb._Database) -> None:
    """Rewrite the first layout (raw id -> seq + expiry; expiry + raw id -> b"") into digests, once."""
    rows = [(bytes(key), bytes(value)) for key, value in txn.cursor(db=index)]
    if not rows:
        return
    txn.drop(index, delete=False)
    txn.drop(expiry, delete=False)
    txn.cursor(db=index).putmulti(sorted((digest(key.decode("utf-8")), b"") for key, _ in rows))
    for key, value in rows:
        seq, exp = value[:8], value[8:16]
        txn.put(seq, digest(key.decode("utf-8")), db=log)
        txn.put(exp + seq, b"", db=expiry)
