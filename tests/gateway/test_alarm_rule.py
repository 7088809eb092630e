"""The alarm rule: alarm word edges become alarm and downtime events, held on bad reads."""
from __future__ import annotations

from drivers.base import Quality, Sample
from gateway.config import AlarmRuleConfig
from gateway.rules.alarm import AlarmRule, AlarmState


def _rule(downtime: bool = True) -> AlarmRule:
    return AlarmRule(AlarmRuleConfig("alarm", "cnc01", "alarm", downtime), "gw", "CNC-01")


def _s(value, ts: float, quality=Quality.GOOD) -> Sample:
    return Sample("cnc01", "alarm", value, quality, ts)


def test_raising_an_alarm_gives_alarm_and_downtime_start_then_clearing_ends_it():
    rule = _rule()
    events, state = rule.apply(None, _s(0, 100.0))
    assert events == [] and state == AlarmState()
    events, state = rule.apply(state, _s(101, 101.5))
    assert [e.kind for e in events] == ["alarm", "downtime_start"]
    assert events[0].data == {"code": 101, "state": "raised"} and state.code == 101
    start = events[1]
    events, state = rule.apply(state, _s(101, 102.0))
    assert events == []
    events, state = rule.apply(state, _s(0, 104.0))
    (end,) = events
    assert end.kind == "downtime_end" and end.data["start_event_id"] == start.id
    assert end.data["duration_s"] == 2.5 and end.data["started"] == start.ts and state == AlarmState()


def test_a_direct_change_of_code_ends_one_downtime_and_starts_the_next():
    rule = _rule()
    _, state = rule.apply(None, _s(101, 10.0))
    events, state = rule.apply(state, _s(102, 12.0))
    assert [e.kind for e in events] == ["downtime_end", "alarm", "downtime_start"]
    assert events[0].data["code"] == 101 and events[1].data["code"] == 102 and state.code == 102


def test_bad_reads_hold_the_state_and_invent_no_edge():
    rule = _rule()
    _, state = rule.apply(None, _s(101, 10.0))
    for q in (Quality.BAD_COMM, Quality.BAD_TIMEOUT, Quality.STALE):
        assert rule.apply(state, _s(None, 11.0, q)) == ([], state)


def test_without_downtime_only_alarms_are_raised():
    events, state = _rule(downtime=False).apply(None, _s(7, 1.0))
    assert [e.kind for e in events] == ["alarm"] and state.start_id is None
    events, _ = _rule(downtime=False).apply(state, _s(0, 2.0))
    assert events == []


def test_the_same_edge_replayed_gives_the_same_ids():
    a, _ = _rule().apply(AlarmState(), _s(101, 55.123))
    b, _ = _rule().apply(AlarmState(), _s(101, 55.123))
    c, _ = _rule().apply(AlarmState(), _s(101, 56.0))
    assert [e.id for e in a] == [e.id for e in b] and a[0].id != c[0].id
