"""Intake dedupe: an id is refused again wherever it lies (memory, index, log after a crash), and memory stays bounded."""
from __future__ import annotations

import hashlib
import struct
import subprocess
import sys

import lmdb
from hypothesis import HealthCheck, given, settings, strategies as st

from store import dedupe
from store.queue import Store, StoreOptions


def _ev(i: int) -> dict:
    return {"id": "evt_" + hashlib.sha256(str(i).encode()).hexdigest()[:32], "kind": "production",
            "data": {"n": i}}


def _append_all(s: Store, ids: range, batch: int = 100) -> tuple[int, int]:
    stored = dups = 0
    for i in range(ids.start, ids.stop, batch):
        r = s.append([_ev(n) for n in range(i, min(i + batch, ids.stop))])
        stored += len(r.seqs)
        dups += r.duplicates
    return stored, dups


def test_an_id_is_refused_in_memory_in_the_index_and_after_a_reopen(tmp_path):
    n = dedupe.RECENT * 2          # the sweep goes round several times: most ids leave memory for the index
    s = Store(tmp_path, sinks=["odoo"])
    assert _append_all(s, range(n)) == (n, 0)
    with s.env.begin() as txn:
        in_index = txn.stat(s._db["dedupe"])["entries"]
    assert in_index > n // 2 and s._dedupe is not None and s._dedupe.size() > 0
    assert _append_all(s, range(n), batch=500) == (0, n)
    s.close()
    s = Store(tmp_path, sinks=["odoo"])
    assert _append_all(s, range(n), batch=500) == (0, n)
    assert s.append([_ev(n)]).seqs == [n + 1]


CRASHER = r"""
import hashlib, os, signal, sys
from store.queue import Store
s = Store(sys.argv[1], sinks=["odoo"])
for i in range(0, int(sys.argv[2]), 100):
    s.append([{"id": "evt_" + hashlib.sha256(str(n).encode()).hexdigest()[:32], "kind": "production",
               "data": {"n": n}} for n in range(i, i + 100)])
print("APPENDED", flush=True)
os.kill(os.getpid(), signal.SIGKILL)     # no close: what memory held is gone, the log is not
"""


def test_ids_only_in_memory_when_the_process_died_are_still_refused(tmp_path):
    n = dedupe.RECENT + 5000
    out = subprocess.run([sys.executable, "-c", CRASHER, str(tmp_path), str(n)], capture_output=True,
                         text=True, timeout=300)
    assert out.stdout.strip() == "APPENDED" and out.returncode == -9, out.stderr
    s = Store(tmp_path, sinks=["odoo"])
    with s.env.begin() as txn:
        assert txn.stat(s._db["dedupe"])["entries"] < n     # some ids were still only in memory
    assert _append_all(s, range(n), batch=1000) == (0, n)


def test_memory_holds_a_bounded_number_of_recent_ids(tmp_path):
    s = Store(tmp_path, sinks=["odoo"])
    most = 0
    for i in range(0, dedupe.RECENT * 4, 250):
        s.append([_ev(n) for n in range(i, i + 250)])
        assert s._dedupe is not None
        most = max(most, s._dedupe.size())
    assert most <= dedupe.RECENT + 2 * 250
    s.close()
    s = Store(tmp_path, sinks=["odoo"])     # a reopened store reads back at most about two rounds
    assert s._dedupe is not None and s._dedupe.size() <= 2 * (dedupe.RECENT + 250)


def test_ids_moved_to_the_index_expire_too(tmp_path):
    now = [1000.0]
    s = Store(tmp_path, sinks=["odoo"], options=StoreOptions(dedupe_ttl=60), clock=lambda: now[0])
    n = dedupe.RECENT + 2000
    _append_all(s, range(n), batch=500)
    now[0] += 61
    for _ in range(n // 1000 + 2):          # each append prunes about 1000 expired ids
        s.append([])
    with s.env.begin() as txn:
        assert txn.stat(s._db["dedupe"])["entries"] == 0
        assert txn.stat(s._db["dedupe_log"])["entries"] == 0
    assert _append_all(s, range(n), batch=500) == (n, 0)


def test_a_store_of_the_first_layout_keeps_refusing_its_ids_and_expires_them(tmp_path):
    now = [1000.0]
    s = Store(tmp_path, sinks=["odoo"])
    s.close()
    env = lmdb.open(str(tmp_path), max_dbs=16)
    k = struct.Struct(">Q").pack
    expiry = k(int((now[0] + 60) * 1000))
    with env.begin(write=True) as txn:      # the first layout: raw id -> seq + expiry, expiry + raw id -> b""
        meta, index, exp = (env.open_db(name, txn=txn) for name in (b"meta", b"dedupe", b"dedupe_exp"))
        for key in (dedupe.MARKER, dedupe.WATERMARK):
            txn.delete(key, db=meta)
        for seq in range(1, 6):
            eid = _ev(seq)["id"].encode()
            txn.put(eid, k(seq) + expiry, db=index)
            txn.put(expiry + eid, b"", db=exp)
        txn.put(b"next_seq", k(6), db=meta)
    env.close()
    s = Store(tmp_path, sinks=["odoo"], options=StoreOptions(dedupe_ttl=60), clock=lambda: now[0])
    assert s.append([_ev(i) for i in range(1, 7)]).duplicates == 5
    now[0] += 61
    s.append([])                            # prunes the converted ids
    assert s.append([_ev(i) for i in range(1, 6)]).duplicates == 0


_IDS = st.lists(st.integers(0, 60), max_size=30)
_OPS = st.lists(st.one_of(
    st.tuples(st.just("append"), st.lists(_IDS, min_size=1, max_size=3)),   # more than one: a group commit
    st.tuples(st.just("wait"), st.sampled_from([0.0, 1.0, 30.0, 59.0, 61.0, 200.0])),
    st.tuples(st.just("reopen"), st.just(0))), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS, recent=st.sampled_from([1, 48, 10**6]))
def test_dedupe_agrees_with_a_plain_model_of_ids_and_expiries(tmp_path_factory, monkeypatch, ops, recent):
    # a small RECENT sends ids round to the index at once, a large one keeps them in memory
    monkeypatch.setattr(dedupe, "RECENT", recent)
    path = tmp_path_factory.mktemp("dedupe")
    now = [1000.0]
    opts = StoreOptions(dedupe_ttl=60)

    def open_store() -> Store:
        return Store(path, options=opts, clock=lambda: now[0])

    s = open_store()
    known: dict[int, int] = {}             # id -> expiry (ms), as the store should see it
    for op, arg in ops:
        if op == "wait":
            now[0] += arg
        elif op == "reopen":
            s.close()
            s = open_store()
        else:
            now_ms = int(now[0] * 1000)
            expected = []
            for ids in arg:                 # each request in turn, pruned at its end
                accepted = []
                for i in ids:
                    if i not in known and i not in accepted:
                        accepted.append(i)
                expected.append((len(accepted), len(ids) - len(accepted)))
                for i in accepted:
                    known[i] = int((now[0] + 60) * 1000)
                known = {i: exp for i, exp in known.items() if exp >= now_ms}
            results = s.append_many([([_ev(i) for i in ids], None) for ids in arg])
            assert [(len(r.seqs), r.duplicates) for r in results] == expected
    s.close()
