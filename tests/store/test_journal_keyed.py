"""The keyed journal: rewrites and truncations that a recomputed hash chain used to hide."""
from __future__ import annotations

import hashlib
import hmac
import json
import struct

import lmdb
import pytest

from store.journal import JournalError
from store.queue import Store, StoreOptions

KEY = bytes(range(32))


def _opts(**kw) -> StoreOptions:
    return StoreOptions(journal_key=KEY, **kw)


def _deliver(s: Store, first: int, n: int) -> None:
    s.append([{"id": f"evt_{i}", "kind": "production", "data": {}} for i in range(first, first + n)])
    for stored in s.read("odoo", n):
        s.ack("odoo", [stored], receipts={stored.event["id"]: f"mrp.workorder,{stored.seq}"})


def _filled(tmp_path, n: int = 20, key: bytes | None = KEY) -> Store:
    s = Store(tmp_path, sinks=["odoo"], options=StoreOptions(journal_key=key))
    _deliver(s, 0, n)
    return s


def _idx(n: int) -> bytes:
    return struct.pack(">Q", n)


def _attack(path, fn) -> None:
    """Write to the LMDB files directly, as someone holding the disk (but not the key) would."""
    env = lmdb.open(str(path), max_dbs=16, subdir=True)
    db, meta = env.open_db(b"journal"), env.open_db(b"meta")
    with env.begin(write=True) as txn:
        fn(txn, db, meta)
    env.close()


def _rechain(txn, db, meta, start: int, mac_key: bytes | None) -> None:
    """Recompute every link from entry `start` on and the head, with `mac_key` (or unkeyed)."""
    prev = json.loads(txn.get(_idx(start - 1), db=db))
    link = prev.get("mac") or prev["hash"]
    n = start
    while (raw := txn.get(_idx(n), db=db)) is not None:
        entry = json.loads(raw)
        entry.pop("mac", None)
        entry.pop("hash", None)
        entry["prev"] = link
        body = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
        if mac_key is None:
            entry["hash"] = link = hashlib.sha256(body).hexdigest()
        else:
            entry["mac"] = link = hmac.new(mac_key, b"linebridge journal entry\0" + body, hashlib.sha256).hexdigest()
        txn.put(_idx(n), json.dumps(entry, sort_keys=True).encode(), db=db)
        n += 1
    head = {"n": n - 1, "hash": link}
    if mac_key is not None:
        head["mac"] = hmac.new(mac_key, f"linebridge journal head\0{n - 1}:{link}".encode(),
                               hashlib.sha256).hexdigest()
    txn.put(b"journal_head", json.dumps(head).encode(), db=meta)


def _edit(txn, db, n: int) -> None:
    entry = json.loads(txn.get(_idx(n), db=db))
    entry["items"][0][2] = "mrp.workorder,999"
    txn.put(_idx(n), json.dumps(entry, sort_keys=True).encode(), db=db)


def test_a_keyed_journal_verifies_and_says_it_checked_the_macs(tmp_path):
    v = _filled(tmp_path).verify_journal()
    assert v.ok and v.entries == 20 and v.keyed_from == 1 and v.macs_checked
    assert str(v) == "journal ok: 20 entries, chain intact; entries 1..20 keyed (MACs checked)"


def test_an_edited_entry_with_the_chain_recomputed_is_named(tmp_path):
    _filled(tmp_path).close()

    def rewrite(txn, db, meta):
        _edit(txn, db, 7)
        _rechain(txn, db, meta, 7, None)  # all an attacker without the key can compute
    _attack(tmp_path, rewrite)
    v = Store(tmp_path, sinks=["odoo"], options=_opts()).verify_journal()
    assert not v.ok and v.first_bad == 7 and "rewritten without the key" in v.reason


def test_an_edited_entry_re_maced_with_another_key_is_named(tmp_path):
    _filled(tmp_path).close()

    def rewrite(txn, db, meta):
        _edit(txn, db, 7)
        _rechain(txn, db, meta, 7, b"x" * 32)
    _attack(tmp_path, rewrite)
    v = Store(tmp_path, sinks=["odoo"], options=_opts()).verify_journal()
    assert not v.ok and v.first_bad == 7 and "MAC" in v.reason
    assert str(v).startswith("journal BROKEN at entry 7: content does not match its MAC")


def test_the_last_ten_entries_removed_and_the_head_rewritten_are_detected(tmp_path):
    _filled(tmp_path).close()

    def truncate(txn, db, meta):
        for n in range(11, 21):
            txn.delete(_idx(n), db=db)
        last = json.loads(txn.get(_idx(10), db=db))
        txn.put(b"journal_head", json.dumps({"n": 10, "hash": last["mac"]}).encode(), db=meta)
    _attack(tmp_path, truncate)
    v = Store(tmp_path, sinks=["odoo"], options=_opts()).verify_journal()
    assert not v.ok and v.first_bad == 11 and "removed at the end" in v.reason


def test_the_last_entries_removed_with_a_forged_head_seal_are_detected(tmp_path):
    _filled(tmp_path).close()

    def truncate(txn, db, meta):
        for n in range(11, 21):
            txn.delete(_idx(n), db=db)
        last = json.loads(txn.get(_idx(10), db=db))
        old = json.loads(txn.get(b"journal_head", db=meta))
        txn.put(b"journal_head", json.dumps({"n": 10, "hash": last["mac"], "mac": old["mac"]}).encode(), db=meta)
    _attack(tmp_path, truncate)
    v = Store(tmp_path, sinks=["odoo"], options=_opts()).verify_journal()
    assert not v.ok and v.first_bad == 11 and "head record does not match its MAC" in v.reason


def test_oldest_entries_removed_outside_pruning_are_detected(tmp_path):
    _filled(tmp_path).close()

    def cut(txn, db, meta):
        for n in range(1, 6):
            txn.delete(_idx(n), db=db)
        fifth = json.loads(txn.get(_idx(6), db=db))["prev"]
        txn.put(b"journal_anchor", json.dumps({"n": 5, "hash": fifth}).encode(), db=meta)
    _attack(tmp_path, cut)
    v = Store(tmp_path, sinks=["odoo"], options=_opts()).verify_journal()
    assert not v.ok and v.first_bad == 6 and "anchor" in v.reason


def test_a_pruned_keyed_journal_verifies_from_its_sealed_anchor(tmp_path):
    s = Store(tmp_path, sinks=["odoo"], options=_opts(journal_keep=1000))
    _deliver(s, 0, 1010)
    assert [e["n"] for e in s.journal_entries(2)] == [1009, 1010]
    v = s.verify_journal()
    assert v.ok and v.entries == 1000 and v.first == 11 and v.keyed_from == 11


def test_an_unkeyed_journal_from_before_the_upgrade_keeps_verifying_and_is_keyed_from_then_on(tmp_path):
    _filled(tmp_path, n=5, key=None).close()
    s = Store(tmp_path, sinks=["odoo"], options=_opts())
    assert s.verify_journal().ok and s.verify_journal().keyed_from is None
    _deliver(s, 100, 3)
    v = s.verify_journal()
    assert v.ok and v.keyed_from == 6 and v.entries == 8
    assert "entries 1..5 unkeyed" in str(v) and "entries 6..8 keyed (MACs checked)" in str(v)
    entries = s.journal_entries()
    assert "hash" in entries[4] and "mac" in entries[5] and entries[5]["prev"] == entries[4]["hash"]
    s.close()

    _attack(tmp_path, lambda txn, db, meta: _edit(txn, db, 2))  # the old part is checked as before
    v = Store(tmp_path, sinks=["odoo"], options=_opts()).verify_journal()
    assert not v.ok and v.first_bad == 2 and "hash" in v.reason


def test_a_keyed_journal_refuses_writes_without_its_key(tmp_path):
    _filled(tmp_path, n=2).close()
    s = Store(tmp_path, sinks=["odoo"])
    s.append([{"id": "evt_x", "kind": "production", "data": {}}])
    with pytest.raises(JournalError, match="keyed"):
        s.ack("odoo", s.read("odoo"))
    v = s.verify_journal()   # a reader without the key checks the links and says what it did not check
    assert v.ok and not v.macs_checked and "MACs NOT checked" in str(v)
