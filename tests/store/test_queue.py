"""The LMDB queue: durable append, per-sink cursors, atomic state, classes, quotas, dead letters."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

from store.queue import BacklogFull, Quota, Store, StoreError, StoreFull, StoreOptions, encode


def _ev(i: int, kind: str = "production", pad: int = 0) -> dict:
    return {"id": f"evt_{kind[:3]}_{i:06d}", "kind": kind, "ts": "2026-11-28T03:00:00.000Z",
            "data": {"quantity": i, "pad": "x" * pad}}


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
    assert [g.event["id"] for g in s.read("odoo")] == ["evt_pro_000001", "evt_pro_000002"]


def test_dedupe_keys_expire(tmp_path):
    now = [1000.0]
    s = Store(tmp_path, sinks=["odoo"], options=StoreOptions(dedupe_ttl=60), clock=lambda: now[0])
    s.append([_ev(1)])
    now[0] += 30
    assert s.append([_ev(1)]).duplicates == 1
    now[0] += 61
    s.append([_ev(2)])  # prunes expired keys
    assert s.append([_ev(1)]).duplicates == 0


def test_each_sink_reads_from_its_own_cursor_and_deletion_waits_for_all(tmp_path):
    s = Store(tmp_path, sinks=["odoo", "mqtt"])
    s.append([_ev(i) for i in range(1, 6)])
    s.ack("odoo", s.read("odoo", 3))
    assert [g.seq for g in s.read("odoo")] == [4, 5]
    assert [g.seq for g in s.read("mqtt")] == [1, 2, 3, 4, 5]
    assert s.stored_count() == 5
    s.ack("mqtt", s.read("mqtt", 2))
    assert s.stored_count() == 3  # 1 and 2 acknowledged by both
    s.ack("mqtt", s.read("mqtt"))
    assert s.stored_count() == 2 and s.backlog("mqtt") == 0 and s.backlog("odoo") == 2


def test_sinks_get_only_the_classes_they_want(tmp_path):
    s = Store(tmp_path, sinks={"odoo": {"business"}, "mqtt": {"business", "telemetry"}})
    s.append([_ev(1), _ev(2, "telemetry"), _ev(3)])
    assert [g.seq for g in s.read("odoo")] == [1, 3]
    assert [(g.seq, g.cls) for g in s.read("mqtt")] == [(1, "business"), (2, "telemetry"), (3, "business")]
    s.ack("mqtt", s.read("mqtt"))
    assert s.stored_count() == 2  # telemetry gone (only mqtt wanted it); business waits for odoo


def test_telemetry_nobody_wants_is_not_stored_but_counted(tmp_path):
    s = Store(tmp_path, sinks=["odoo"])
    r = s.append([_ev(1, "telemetry")])
    assert r.seqs == [] and r.unrouted == 1 and s.stats()["unrouted"] == 1


def test_ack_commits_sink_state_dead_letters_and_journal_with_the_cursor(tmp_path):
    s = Store(tmp_path, sinks=["odoo"])
    s.append([_ev(1), _ev(2)])
    batch = s.read("odoo")
    s.ack("odoo", batch, {"sink/odoo/wo/1": b"7"}, dead=[(batch[1], "ValidationError: nope")],
          receipts={batch[0].event["id"]: "mrp.workorder,1"})
    assert s.get_state("sink/odoo/wo/1") == b"7"
    (letter,) = s.dead_letters("odoo")
    assert letter["event"]["id"] == "evt_pro_000002" and letter["error"] == "ValidationError: nope"
    assert letter["attempts"] == 1 and letter["first_failure"] == letter["last_failure"]
    assert s.read("odoo") == []
    assert [(e["op"], e["items"]) for e in s.journal_entries()] == [
        ("delivered", [["evt_pro_000001", 1, "mrp.workorder,1"]]), ("dead_letter", [["evt_pro_000002", 2, None]])]


def test_cursor_never_moves_back(tmp_path):
    s = Store(tmp_path, sinks=["odoo"])
    s.append([_ev(1), _ev(2)])
    first = s.read("odoo")
    s.ack("odoo", first)
    with pytest.raises(StoreError):
        s.ack("odoo", first[:1])


def test_dead_letter_replay_goes_back_to_that_sink_only_and_then_leaves(tmp_path):
    s = Store(tmp_path, sinks=["odoo", "mqtt"])
    s.append([_ev(1), _ev(2, "scrap")])
    batch = s.read("odoo")
    s.ack("odoo", batch, dead=[(batch[0], "no work order"), (batch[1], "no location")])
    assert s.replay("odoo", kind="scrap") == 1
    assert s.replay("odoo", kind="scrap") == 0  # already on its way
    (again,) = s.read("odoo")
    assert again.cls == "replay" and again.event["kind"] == "scrap"
    assert len(s.read("mqtt")) == 2  # the other sink is untouched
    s.ack("odoo", [again], dead=[(again, "still no location")])
    letters = {l["event"]["kind"]: l for l in s.dead_letters("odoo")}
    assert letters["scrap"]["attempts"] == 2 and letters["scrap"]["error"] == "still no location"
    s.replay("odoo", seqs=[letters["scrap"]["seq"]])
    s.ack("odoo", s.read("odoo"))
    assert [l["event"]["kind"] for l in s.dead_letters("odoo")] == ["production"]
    assert s.discard("odoo") == 1 and s.dead_letters() == []
    ops = [(e["op"], len(e["items"])) for e in s.journal_entries()]
    assert ops == [("dead_letter", 2), ("replay", 1), ("dead_letter", 1), ("replay", 1), ("delivered", 1),
                   ("discard", 1)]
    assert s.verify_journal().ok


def test_business_events_at_their_cap_are_refused_never_evicted(tmp_path):
    opts = StoreOptions(quotas={"business": Quota(max_events=3), "telemetry": Quota()})
    s = Store(tmp_path, sinks=["odoo"], options=opts)
    s.append([_ev(1), _ev(2), _ev(3)])
    with pytest.raises(BacklogFull):
        s.append([_ev(4)], {"rule/parts": b"moved"})
    assert s.get_state("rule/parts") is None and s.stored_count() == 3
    s.ack("odoo", s.read("odoo", 2))
    assert s.append([_ev(4)]).seqs == [4]  # room again once delivered


def test_telemetry_at_its_cap_evicts_its_oldest_and_counts_them(tmp_path):
    opts = StoreOptions(quotas={"business": Quota(), "telemetry": Quota(max_events=5)})
    s = Store(tmp_path, sinks={"mqtt": {"business", "telemetry"}}, options=opts)
    s.append([_ev(i, "telemetry") for i in range(8)] + [_ev(100)])
    stats = s.stats()
    assert stats["classes"]["telemetry"]["events"] == 5 and stats["classes"]["telemetry"]["evicted"] == 3
    got = s.read("mqtt")
    assert [g.event["data"]["quantity"] for g in got if g.cls == "telemetry"] == [3, 4, 5, 6, 7]
    assert any(g.cls == "business" for g in got)


def test_the_map_grows_on_demand_up_to_its_maximum_then_refuses_cleanly(tmp_path):
    opts = StoreOptions(map_size=256 * 1024, max_map_size=1024 * 1024)
    s = Store(tmp_path, sinks=["odoo"], options=opts)
    s.append([_ev(i, pad=1000) for i in range(300)])  # ~330 KB: more than the first map
    assert s.env.info()["map_size"] > 256 * 1024
    with pytest.raises(StoreFull):
        s.append([_ev(1000 + i, pad=1000) for i in range(2000)], {"rule/x": b"1"})
    assert s.get_state("rule/x") is None and s.stored_count() == 300
    s.ack("odoo", s.read("odoo", 300))
    assert s.append([_ev(5000)]).seqs == [301]


def test_another_process_can_read_while_the_writer_holds_the_store(tmp_path):
    s = Store(tmp_path, sinks=["odoo"])
    s.append([_ev(1), _ev(2)])
    code = ("import sys; from store.queue import Store; "
            "r = Store(sys.argv[1], sinks=['odoo'], readonly=True); print(len(r.read('odoo')), r.backlog('odoo'))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                         timeout=30)
    assert out.stdout.split() == ["2", "2"], out.stderr


def test_stats_report_counts_bytes_lag_and_dead_letters(tmp_path):
    s = Store(tmp_path, sinks=["odoo"], clock=lambda: 1_796_000_000.0)
    s.append([_ev(1), _ev(2), _ev(3)])
    b = s.read("odoo", 1)
    s.ack("odoo", b, dead=[(b[0], "x")])
    st = s.stats()
    assert st["classes"]["business"]["events"] == 2 and st["classes"]["business"]["bytes"] > 0
    assert st["sinks"]["odoo"]["lag_seq"] == 2 and st["sinks"]["odoo"]["dead_letters"] == 1
    assert st["sinks"]["odoo"]["backlog"] == 2 and st["classes"]["business"]["oldest_age_s"] > 0


@given(event=st.dictionaries(st.text(max_size=8), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12), max_size=6), seq=st.integers(1, 2**63))
def test_stored_bytes_are_those_of_json_dumps_with_the_seq(event, seq):
    assert encode(event, seq) == json.dumps(dict(event, seq=seq), separators=(",", ":")).encode("utf-8")
