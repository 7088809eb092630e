"""The delivery journal: a hash-chained, append-only record of what went where.

Each entry records what one acknowledgement (or one person's action) did at a
sink: `op` (`delivered`, `dead_letter`, `replay`, `discard`), the sink, the
time, `items` (one `[event id, seq, remote reference]` per event, the remote
reference being e.g. the Odoo record `mrp.workorder,7`), and the hash of the
previous entry; its own hash covers all of that. One entry per acknowledged
batch keeps the chain cheap at high delivery rates. Changing, reordering or removing an entry breaks the chain at that
point, and `verify` names the first bad entry. Old entries can be pruned past a
retention cap: the hash of the last pruned entry is kept as the anchor the
chain then starts from, so verification still covers everything that is kept.
Functions here work inside a write transaction owned by the store.
"""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

import lmdb

_IDX = struct.Struct(">Q")
GENESIS = "0" * 64


def _hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def append(txn: lmdb.Transaction, db: Any, meta: Any, entries: list[dict[str, Any]]) -> None:
    """Chain `entries` (op, sink, ts, items) onto the journal."""
    if not entries:
        return
    head = json.loads(txn.get(b"journal_head", db=meta) or b'{"n": 0, "hash": "%s"}' % GENESIS.encode())
    n, prev = head["n"], head["hash"]
    for e in entries:
        n += 1
        entry = dict(e, n=n, prev=prev)
        entry["hash"] = prev = _hash(entry)
        txn.put(_IDX.pack(n), json.dumps(entry, sort_keys=True).encode(), db=db, append=True)
    txn.put(b"journal_head", json.dumps({"n": n, "hash": prev}).encode(), db=meta)


def prune(txn: lmdb.Transaction, db: Any, meta: Any, keep: int) -> int:
    """Remove the oldest entries beyond `keep`, remembering the last removed hash as anchor."""
    total = txn.stat(db)["entries"]
    removed = 0
    cur = txn.cursor(db=db)
    while total - removed > keep and cur.first():
        entry = json.loads(cur.value())
        txn.put(b"journal_anchor", json.dumps({"n": entry["n"], "hash": entry["hash"]}).encode(), db=meta)
        cur.delete()
        removed += 1
    return removed


@dataclass(frozen=True)
class Verdict:
    ok: bool
    entries: int
    first_bad: int | None = None
    reason: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"journal ok: {self.entries} entries, chain intact"
        return f"journal BROKEN at entry {self.first_bad}: {self.reason}"


def verify(txn: lmdb.Transaction, db: Any, meta: Any) -> Verdict:
    """Walk the chain from its anchor; report the first altered, reordered or missing entry."""
    anchor = json.loads(txn.get(b"journal_anchor", db=meta) or b'{"n": 0, "hash": "%s"}' % GENESIS.encode())
    head_raw = txn.get(b"journal_head", db=meta)
    expected_n, prev = anchor["n"], anchor["hash"]
    count = 0
    for key, value in txn.cursor(db=db):
        expected_n += 1
        count += 1
        idx = _IDX.unpack(key)[0]
        try:
            entry = json.loads(value)
        except ValueError:
            return Verdict(False, count, idx, "entry is not valid JSON")
        if idx != expected_n or entry.get("n") != expected_n:
            return Verdict(False, count, expected_n, f"entry {expected_n} is missing or out of order "
                                                     f"(found entry {entry.get('n', idx)})")
        if entry.get("prev") != prev:
            return Verdict(False, count, idx, "previous-hash link does not match the entry before it")
        if _hash(entry) != entry.get("hash"):
            return Verdict(False, count, idx, "content does not match its hash (altered)")
        prev = entry["hash"]
    if head_raw:
        head = json.loads(head_raw)
        if head["n"] != expected_n or head["hash"] != prev:
            return Verdict(False, count, expected_n + 1,
                           f"journal ends at entry {expected_n} but {head['n']} were written (removed at the end)")
    return Verdict(True, count)


def entries(txn: lmdb.Transaction, db: Any, limit: int = 100) -> list[dict[str, Any]]:
    """The newest `limit` entries, oldest first."""
    out: list[dict[str, Any]] = []
    cur = txn.cursor(db=db)
    if cur.last():
        for _, value in cur.iterprev():
            out.append(json.loads(value))
            if len(out) >= limit:
                break
    return out[::-1]
