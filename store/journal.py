"""The delivery journal: a keyed, hash-chained, append-only record of what went where.

Each entry records what one acknowledgement (or one person's action) did at a
sink: `op` (`delivered`, `dead_letter`, `replay`, `discard`, a label's `reprint`), the sink, the
time, `items` (one `[event id, seq, remote reference]` per event, the remote
reference being e.g. the Odoo record `mrp.workorder,7`), its number `n` and the
link of the previous entry (`prev`). One entry per acknowledged batch keeps the
chain cheap at high delivery rates.

An entry's link is its `mac`: HMAC-SHA256, with the journal key only the gateway
holds (derived from the device key, see `gateway.signing`), over everything
else in the entry. The head (`n` and link of the newest entry) and the anchor
(the same of the last pruned entry) are kept in `meta`, sealed with the same
key, so entries removed at either end show as well as changed ones. `verify`
names the first bad entry. Old entries are pruned past a retention cap: the
chain then starts from the anchor.

Journals written before the key existed carry `hash` (plain SHA-256) instead of
`mac`. They keep verifying as before; the first keyed entry links onto the last
unkeyed one, and from then on every entry must be keyed: an unkeyed entry after
a keyed one is a rewrite. The unkeyed part only shows edits by someone who did
not recompute the chain. What an attacker holding the disk can still do, and
how the signed checkpoints in the heartbeat catch it, is in docs/tamper.md.

Functions here work inside a transaction owned by the store; the key is the
store's (`StoreOptions.journal_key`), None where a reader does not hold it.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from typing import Any

import lmdb

_IDX = struct.Struct(">Q")
GENESIS = "0" * 64
_ENTRY_TAG = b"linebridge journal entry\0"
_LINKS = ("hash", "mac")


class JournalError(Exception):
    """The journal cannot be written as asked (a keyed journal without its key)."""


def _body(entry: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in entry.items() if k not in _LINKS},
                      sort_keys=True, separators=(",", ":")).encode()


def _hash(entry: dict[str, Any]) -> str:
    """The unkeyed link of a journal written before the upgrade."""
    return hashlib.sha256(_body(entry)).hexdigest()


def _mac(key: bytes, entry: dict[str, Any]) -> str:
    return hmac.new(key, _ENTRY_TAG + _body(entry), hashlib.sha256).hexdigest()


def _seal(key: bytes, what: str, n: int, link: str) -> str:
    """The MAC of the head or anchor record: which entry ends (or starts) the chain."""
    return hmac.new(key, f"linebridge journal {what}\0{n}:{link}".encode(), hashlib.sha256).hexdigest()


def link(entry: dict[str, Any]) -> str:
    """What the next entry's `prev` names: the entry's MAC, or its hash if unkeyed."""
    return str(entry.get("mac") or entry.get("hash"))


def _mark(what: str, n: int, lnk: str, key: bytes | None) -> bytes:
    rec: dict[str, Any] = {"n": n, "hash": lnk}
    if key is not None:
        rec["mac"] = _seal(key, what, n, lnk)
    return json.dumps(rec).encode()


def head(txn: lmdb.Transaction, meta: Any) -> dict[str, Any]:
    """`{"n", "hash"[, "mac"]}` of the newest entry ever written (n 0 on an empty journal)."""
    raw = txn.get(b"journal_head", db=meta)
    return json.loads(raw) if raw else {"n": 0, "hash": GENESIS}


def anchor(txn: lmdb.Transaction, meta: Any) -> dict[str, Any]:
    """`{"n", "hash"[, "mac"]}` of the last pruned entry (n 0 when nothing was pruned)."""
    raw = txn.get(b"journal_anchor", db=meta)
    return json.loads(raw) if raw else {"n": 0, "hash": GENESIS}


def append(txn: lmdb.Transaction, db: Any, meta: Any, entries: list[dict[str, Any]],
           key: bytes | None = None) -> None:
    """Chain `entries` (op, sink, ts, items) onto the journal, keyed when `key` is given."""
    if not entries:
        return
    top = head(txn, meta)
    if key is None and "mac" in top:
        raise JournalError("the journal is keyed: open the store with the gateway's journal key "
                           "(the device key must be readable) to write to it")
    n, prev = top["n"], top["hash"]
    for e in entries:
        n += 1
        entry = dict(e, n=n, prev=prev)
        if key is not None:
            entry["mac"] = prev = _mac(key, entry)
        else:
            entry["hash"] = prev = _hash(entry)
        txn.put(_IDX.pack(n), json.dumps(entry, sort_keys=True).encode(), db=db, append=True)
    txn.put(b"journal_head", _mark("head", n, prev, key), db=meta)


def prune(txn: lmdb.Transaction, db: Any, meta: Any, keep: int, key: bytes | None = None) -> int:
    """Remove the oldest entries beyond `keep`, remembering the last removed one as the anchor."""
    total = txn.stat(db)["entries"]
    removed = 0
    cur = txn.cursor(db=db)
    last: dict[str, Any] | None = None
    while total - removed > keep and cur.first():
        last = json.loads(cur.value())
        cur.delete()
        removed += 1
    if last is not None:
        txn.put(b"journal_anchor", _mark("anchor", last["n"], link(last), key), db=meta)
    return removed


@dataclass(frozen=True)
class Verdict:
    """What `verify` found. `keyed_from` is the first keyed entry (None: none kept);
    `macs_checked` is False when the verifier did not hold the key."""

    ok: bool
    entries: int
    first_bad: int | None = None
    reason: str | None = None
    keyed_from: int | None = None
    macs_checked: bool = True
    first: int = 1

    def __str__(self) -> str:
        if not self.ok:
            return f"journal BROKEN at entry {self.first_bad}: {self.reason}"
        out = f"journal ok: {self.entries} entries, chain intact"
        last = self.first + self.entries - 1
        if self.keyed_from is None:
            return out if not self.entries else out + " (unkeyed: written before keyed journals)"
        if self.keyed_from > self.first:
            out += (f"; entries {self.first}..{self.keyed_from - 1} unkeyed (written before the upgrade: "
                    "hash chain only)")
        out += f"; entries {self.keyed_from}..{last} keyed"
        return out + (" (MACs checked)" if self.macs_checked else
                      " (MACs NOT checked: no journal key here; links only)")


def verify(txn: lmdb.Transaction, db: Any, meta: Any, key: bytes | None = None) -> Verdict:
    """Walk the chain from its anchor to its head; report the first altered, reordered or missing entry.

    Without `key` the MACs, the head's and the anchor's seals are not checked
    (only the links): say so, and check with the key or against a checkpoint.
    """
    start = anchor(txn, meta)
    head_raw = txn.get(b"journal_head", db=meta)
    checked = key is not None
    mkey = key or b""
    expected_n, prev = start["n"], start["hash"]
    first = expected_n + 1
    count = 0
    keyed_from: int | None = None

    def bad(at: int, reason: str) -> Verdict:
        return Verdict(False, count, at, reason, keyed_from, checked, first)

    for k, value in txn.cursor(db=db):
        expected_n += 1
        count += 1
        idx = _IDX.unpack(k)[0]
        try:
            entry = json.loads(value)
        except ValueError:
            return bad(idx, "entry is not valid JSON")
        if idx != expected_n or entry.get("n") != expected_n:
            return bad(expected_n, f"entry {expected_n} is missing or out of order "
                                   f"(found entry {entry.get('n', idx)})")
        if entry.get("prev") != prev:
            return bad(idx, "previous-hash link does not match the entry before it")
        if "mac" in entry:
            if keyed_from is None:
                keyed_from = idx
                if start["n"] and "mac" not in start and idx == first and checked:
                    return bad(idx, "the anchor before the first kept entry is not sealed "
                                    "(older entries removed outside pruning)")
            if checked and not hmac.compare_digest(_mac(mkey, entry), str(entry["mac"])):
                return bad(idx, "content does not match its MAC (altered)")
        elif "hash" in entry:
            if keyed_from is not None:
                return bad(idx, f"unkeyed entry after keyed entries (from {keyed_from}): rewritten without the key")
            if _hash(entry) != entry["hash"]:
                return bad(idx, "content does not match its hash (altered)")
        else:
            return bad(idx, "entry carries neither hash nor mac")
        prev = link(entry)
    if checked and "mac" in start and not hmac.compare_digest(
            _seal(mkey, "anchor", start["n"], start["hash"]), str(start["mac"])):
        return bad(first, "the anchor record does not match its MAC (older entries removed or rewritten)")
    if head_raw:
        top = json.loads(head_raw)
        if top["n"] != expected_n or top["hash"] != prev:
            return bad(expected_n + 1,
                       f"journal ends at entry {expected_n} but {top['n']} were written (removed at the end)")
        if "mac" in top and checked and not hmac.compare_digest(
                _seal(mkey, "head", top["n"], top["hash"]), str(top["mac"])):
            return bad(expected_n + 1, "the head record does not match its MAC "
                                       "(entries removed at the end and the head rewritten)")
        if keyed_from is not None and "mac" not in top:
            return bad(expected_n + 1, "the head record of a keyed journal is not sealed "
                                       "(entries removed at the end and the head rewritten)")
    elif count:
        return bad(expected_n, "entries but no head record (removed and rewritten)")
    return Verdict(True, count, None, None, keyed_from, checked or keyed_from is None, first)


def entry_link(txn: lmdb.Transaction, db: Any, meta: Any, n: int) -> str | None:
    """The link (MAC or hash) of entry `n`: kept, the anchor, or None when pruned past or never written."""
    if n < 0:
        return None
    raw = txn.get(_IDX.pack(n), db=db)
    if raw is not None:
        return link(json.loads(raw))
    start = anchor(txn, meta)
    if start["n"] == n:
        return str(start["hash"])
    return None


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
