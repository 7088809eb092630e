"""The delivery journal: a hash chain that names the first altered, reordered or removed entry."""
from __future__ import annotations

import json
import struct

import lmdb

from store.queue import Store, StoreOptions


def _filled(tmp_path, n: int = 6) -> Store:
    s = Store(tmp_path, sinks=["odoo"])
    s.append([{"id": f"evt_{i}", "kind": "production", "data": {}} for i in range(n)])
    for stored in s.read("odoo"):
        s.ack("odoo", [stored], receipts={stored.event["id"]: f"mrp.workorder,{stored.seq}"})
    return s


def _tamper(path, fn) -> None:
    env = lmdb.open(str(path), max_dbs=16, subdir=True)
    db = env.open_db(b"journal")
    with env.begin(write=True) as txn:
        fn(txn, db)
    env.close()


def _key(n: int) -> bytes:
    return struct.pack(">Q", n)


def test_an_untouched_journal_verifies(tmp_path):
    s = _filled(tmp_path)
    v = s.verify_journal()
    assert v.ok and v.entries == 6 and str(v).startswith("journal ok: 6 entries, chain intact")


def test_an_altered_entry_is_named(tmp_path):
    _filled(tmp_path).close()

    def alter(txn, db):
        entry = json.loads(txn.get(_key(3), db=db))
        entry["items"][0][2] = "mrp.workorder,999"
        txn.put(_key(3), json.dumps(entry).encode(), db=db)
    _tamper(tmp_path, alter)
    v = Store(tmp_path, sinks=["odoo"]).verify_journal()
    assert not v.ok and v.first_bad == 3 and "altered" in v.reason


def test_an_altered_entry_with_a_recomputed_hash_breaks_the_next_link(tmp_path):
    _filled(tmp_path).close()

    def alter(txn, db):
        from store.journal import _hash
        entry = json.loads(txn.get(_key(2), db=db))
        entry["items"][0][0] = "evt_forged"
        entry["hash"] = _hash(entry)
        txn.put(_key(2), json.dumps(entry).encode(), db=db)
    _tamper(tmp_path, alter)
    v = Store(tmp_path, sinks=["odoo"]).verify_journal()
    assert not v.ok and v.first_bad == 3 and "previous-hash" in v.reason


def test_a_removed_entry_is_named(tmp_path):
    _filled(tmp_path).close()
    _tamper(tmp_path, lambda txn, db: txn.delete(_key(4), db=db))
    v = Store(tmp_path, sinks=["odoo"]).verify_journal()
    assert not v.ok and v.first_bad == 4 and "missing" in v.reason


def test_swapped_entries_are_detected(tmp_path):
    _filled(tmp_path).close()

    def swap(txn, db):
        a, b = txn.get(_key(2), db=db), txn.get(_key(3), db=db)
        txn.put(_key(2), b, db=db)
        txn.put(_key(3), a, db=db)
    _tamper(tmp_path, swap)
    v = Store(tmp_path, sinks=["odoo"]).verify_journal()
    assert not v.ok and v.first_bad == 2


def test_removing_the_newest_entries_is_detected(tmp_path):
    _filled(tmp_path).close()
    _tamper(tmp_path, lambda txn, db: txn.delete(_key(6), db=db))
    v = Store(tmp_path, sinks=["odoo"]).verify_journal()
    assert not v.ok and v.first_bad == 6 and "removed at the end" in v.reason


def test_pruned_journal_still_verifies_from_its_anchor(tmp_path):
    s = Store(tmp_path, sinks=["odoo"], options=StoreOptions(journal_keep=3))
    s.append([{"id": f"evt_{i}", "kind": "production", "data": {}} for i in range(10)])
    for stored in s.read("odoo"):
        s.ack("odoo", [stored])
    entries = s.journal_entries()
    assert [e["n"] for e in entries] == [8, 9, 10] and s.verify_journal().ok
