"""The LMDB queue: durable append, per-sink cursors, atomic state, dead letters, pruning."""
from __future__ import annotations

import subprocess
import sys

import pytest

from store.queue import Store, StoreError, StoreFull


def _ev(i: int, kind: str = "production") -> dict:
    return {"id": f"evt_{i:04d}", "kind": kind, "data": {"quantity": i}}


def test_append_gives_monotonic_seqs_and_survives_reopen(tmp_path):
    s = Store(tmp_path, sinks=["odoo"])
    assert s.append([_ev(1), _ev(2)]).seqs == [1, 2]
    assert s.append([_ev(3)]).seqs == [3]
    s.close()
    s = Store(tmp_path, sinks=["odoo"])
    got = s.read("odoo")
    assert [g.seq for g in got] == [1, 2, 3] and got[0].event["seq"] == 1
    assert s.append([_ev(4)]).seqs == [4]


def test_events_and_rule_state_are_written_together(tmp_path):
    s = Store(tmp_path, sinks=["odoo"])
    s.append([_ev(1)], {"rule/parts": b'{"raw": 5}'})
    assert s.get_state("rule/parts") == b'{"raw": 5}' and s.backlog("odoo") == 1


def test_duplicate_event_id_is_stored_once(tmp_path):
    s = Store(tmp_path, sinks=["odoo"])
    s.append([_ev(1)])
    r = s.append([_ev(1), _ev(2)])
    assert r.seqs == [2] and r.duplicates == 1
    assert [g.event["id"] for g in s.read("odoo")] == ["evt_0001", "evt_0002"]


def test_each_sink_reads_from_its_own_cursor_and_deletion_waits_for_all(tmp_path):
    s = Store(tmp_path, sinks=["odoo", "mqtt"])
    s.append([_ev(i) for i in range(1, 6)])
    s.ack("odoo", 3)
    assert [g.seq for g in s.read("odoo")] == [4, 5]
    assert [g.seq for g in s.read("mqtt")] == [1, 2, 3, 4, 5]
    assert s.stored_count() == 5
    s.ack("mqtt", 2)
    assert s.stored_count() == 3  # 1 and 2 acknowledged by both
    s.ack("mqtt", 5)
    assert s.stored_count() == 2 and s.backlog("mqtt") == 0 and s.backlog("odoo") == 2


def test_ack_commits_sink_state_and_dead_letters_with_the_cursor(tmp_path):
    s = Store(tmp_path, sinks=["odoo"])
    s.append([_ev(1), _ev(2)])
    batch = s.read("odoo")
    s.ack("odoo", 2, {"sink/odoo/wo/1": b"7"}, dead=[(batch[1], "ValidationError: nope", 1)])
    assert s.get_state("sink/odoo/wo/1") == b"7"
    (letter,) = s.dead_letters("odoo")
    assert letter["event"]["id"] == "evt_0002" and letter["error"] == "ValidationError: nope"
    assert s.read("odoo") == []


def test_cursor_never_moves_back(tmp_path):
    s = Store(tmp_path, sinks=["odoo"])
    s.append([_ev(1), _ev(2)])
    s.ack("odoo", 2)
    with pytest.raises(StoreError):
        s.ack("odoo", 1)


def test_full_map_is_a_clear_refusal_and_nothing_is_half_written(tmp_path):
    s = Store(tmp_path, sinks=["odoo"], map_size=64 * 1024)
    big = {"id": "evt_big", "kind": "production", "data": {"blob": "x" * 200_000}}
    with pytest.raises(StoreFull):
        s.append([_ev(1), big], {"rule/parts": b"moved"})
    assert s.get_state("rule/parts") is None and s.read("odoo") == []
    assert s.append([_ev(2)]).seqs == [1]


def test_another_process_can_read_while_the_writer_holds_the_store(tmp_path):
    s = Store(tmp_path, sinks=["odoo"])
    s.append([_ev(1), _ev(2)])
    code = ("import sys; from store.queue import Store; "
            "r = Store(sys.argv[1], readonly=True); print(len(r.read('odoo')), r.backlog('odoo'))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                         timeout=30)
    assert out.stdout.split() == ["2", "2"], out.stderr
