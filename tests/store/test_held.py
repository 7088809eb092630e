"""Held events: set aside by a sink in a lane, kept while the queues are pruned, settled in one transaction."""
from __future__ import annotations

from store.queue import Store


def _ev(i: int, kind: str = "production") -> dict:
    return {"id": f"evt_{i:06d}", "kind": kind, "ts": "2026-11-28T03:00:00.000Z", "data": {"quantity": i}}


def test_a_held_event_is_passed_by_the_cursor_kept_after_pruning_and_released_once(tmp_path):
    s = Store(tmp_path / "s", sinks=["odoo", "mqtt"])
    s.append([_ev(1), _ev(2), _ev(3)])
    one, two, three = s.read("odoo")
    s.ack("odoo", [two], hold=[(one, "CNC-02", "waits", 100.0), (three, "CNC-02", "waits", 101.0)])
    assert s.cursor("odoo") == 3 and s.read("odoo") == [] and s.backlog("odoo") == 2
    s.ack("mqtt", s.read("mqtt"))
    assert s.stored_count() == 0, "the queues are pruned: both sinks passed every event"
    held = s.held("odoo")
    assert [(h.stored.seq, h.stored.event["id"], h.lane, h.since) for h in held] == [
        (1, "evt_000001", "CNC-02", 100.0), (3, "evt_000003", "CNC-02", 101.0)]
    s.close()
    s = Store(tmp_path / "s", sinks=["odoo", "mqtt"])   # a restart keeps them
    first, second = (h.stored for h in s.held("odoo"))
    s.release("odoo", [first, second], dead=[(second, "no open work order on work center 'CNC-02' for 60 s")],
              receipts={"evt_000001": "mrp.workorder,7"}, state={"sink/odoo/x": b"1"})
    assert s.held("odoo") == [] and s.backlog("odoo") == 0 and s.get_state("sink/odoo/x") == b"1"
    (letter,) = s.dead_letters("odoo")
    assert letter["seq"] == 3 and letter["error"].startswith("no open work order")
    ops = [(e["op"], [i[:3] for i in e["items"]]) for e in s.journal_entries() if e["sink"] == "odoo"]
    assert ("delivered", [["evt_000001", 1, "mrp.workorder,7"]]) in ops
    assert ("dead_letter", [["evt_000003", 3, None]]) in ops
    assert s.verify_journal().ok
    assert s.stats()["sinks"]["odoo"]["held"] == 0


def test_a_replayed_dead_letter_held_again_leaves_the_replay_queue_and_its_letter_goes_when_delivered(tmp_path):
    s = Store(tmp_path / "s", sinks=["odoo"])
    s.append([_ev(1)])
    (one,) = s.read("odoo")
    s.ack("odoo", [one], dead=[(one, "no open work order")])
    s.replay("odoo")
    (again,) = s.read("odoo")
    assert again.cls == "replay"
    s.ack("odoo", [], hold=[(again, "CNC-02", "waits", 5.0)])
    assert s.read("odoo") == [] and s.backlog("odoo") == 1
    (held,) = s.held("odoo")
    assert held.stored.cls == "replay" and s.dead_letters("odoo")[0]["replayed"]
    s.release("odoo", [held.stored])
    assert s.held("odoo") == [] and s.dead_letters("odoo") == [] and s.backlog("odoo") == 0
