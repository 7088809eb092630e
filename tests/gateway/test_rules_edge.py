"""Edge and alarm rules: on-conditions, debounce, min_duration, repeat suppression, no flapping."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from drivers.base import Quality, Sample
from gateway.config import AlarmRuleConfig
from gateway.events import iso_utc
from gateway.rules.alarm import AlarmRule, AlarmState
from gateway.rules.config import EdgeRuleConfig
from gateway.rules.edge import ConditionRule


def _edge(**kw) -> ConditionRule:
    return ConditionRule(EdgeRuleConfig("door", "plc", "door", **kw), "gw", "CNC-01")


def _s(value, ts: float, quality=Quality.GOOD, tag: str = "door") -> Sample:
    return Sample("plc", tag, value, quality, ts)


def run(rule, values_ts, state=None):
    events = []
    for value, ts in values_ts:
        produced, state = rule.apply(state, _s(value, ts))
        events.extend(produced)
    return events, state


def test_a_true_bool_tag_gives_a_downtime_pair_at_the_edge_times():
    events, state = run(_edge(on="true"), [(False, 0.0), (True, 10.0), (True, 11.0), (False, 25.5)])
    assert [e.kind for e in events] == ["downtime_start", "downtime_end"]
    assert events[0].ts == "1970-01-01T00:00:10.000Z" and events[1].data["duration_s"] == 15.5
    assert events[1].data["start_event_id"] == events[0].id and state.code == 0


def test_a_configured_value_is_the_condition_and_the_alarm_code_comes_from_config():
    rule = _edge(on="STOPPED", alarm=True, downtime=False, code=42)
    events, _ = run(rule, [("RUNNING", 1.0), ("STOPPED", 2.0), ("STOPPED", 3.0), ("RUNNING", 4.0)])
    assert [(e.kind, e.data["code"]) for e in events] == [("alarm", 42)]


def test_nonzero_takes_the_alarm_code_from_the_value():
    events, _ = run(_edge(on="nonzero", alarm=True), [(0, 1.0), (17, 2.0), (0, 3.0)])
    assert [(e.kind, e.data["code"]) for e in events] == [("alarm", 17), ("downtime_start", 17),
                                                         ("downtime_end", 17)]


def test_on_false_means_the_signal_dropping_is_the_condition():
    events, _ = run(_edge(on=False), [(True, 1.0), (False, 2.0), (True, 5.0)])
    assert [e.kind for e in events] == ["downtime_start", "downtime_end"]


def test_a_blip_shorter_than_the_debounce_gives_nothing():
    events, state = run(_edge(on="true", debounce=2.0),
                        [(False, 0.0), (True, 1.0), (True, 2.5), (False, 2.9), (False, 10.0)])
    assert events == [] and state.code == 0 and state.pending is None


def test_a_change_that_holds_the_debounce_counts_at_its_first_sight():
    events, _ = run(_edge(on="true", debounce=2.0), [(True, 1.0), (True, 2.0), (True, 3.0)])
    (start,) = events
    assert start.kind == "downtime_start" and start.ts == "1970-01-01T00:00:01.000Z"


def test_a_short_downtime_is_dropped_as_a_pair_and_a_long_one_starts_at_its_edge():
    rule = _edge(on="true", min_duration=60.0)
    events, state = run(rule, [(True, 0.0), (True, 30.0), (False, 59.0)])
    assert events == [] and state.code == 0
    events, state = run(rule, [(True, 100.0), (True, 130.0)], state)
    assert events == []
    events, state = run(rule, [(True, 160.0), (False, 200.0)], state)
    assert [e.kind for e in events] == ["downtime_start", "downtime_end"]
    assert events[0].ts == "1970-01-01T00:01:40.000Z" and events[1].data["duration_s"] == 100.0


def test_the_alarm_rule_takes_the_same_options_and_keeps_todays_behaviour_by_default():
    plain = AlarmRule(AlarmRuleConfig("alarm", "plc", "door"), "gw", "CNC-01")
    events, state = run(plain, [(0, 1.0), (101, 2.0), (0, 3.0)])
    assert [e.kind for e in events] == ["alarm", "downtime_start", "downtime_end"] and state == AlarmState()
    slow = AlarmRule(AlarmRuleConfig("alarm", "plc", "door", True, debounce=1.0, min_duration=5.0),
                     "gw", "CNC-01")
    events, _ = run(slow, [(101, 2.0), (0, 2.5), (101, 10.0), (101, 11.0), (0, 12.0), (0, 14.0)])
    assert [e.kind for e in events] == ["alarm"]      # raised after debounce; downtime under 5 s dropped


def test_a_re_raise_within_repeat_suppress_gives_no_new_alarm_but_still_the_downtime_pair():
    rule = AlarmRule(AlarmRuleConfig("alarm", "plc", "door", True, repeat_suppress=60.0), "gw", "CNC-01")
    events, state = run(rule, [(7, 0.0), (0, 10.0), (7, 30.0), (0, 40.0), (8, 45.0), (0, 50.0), (7, 200.0)])
    kinds = [(e.kind, e.data["code"]) for e in events]
    assert kinds.count(("alarm", 7)) == 2                # the first and the one 160 s after the clear
    assert ("alarm", 8) in kinds
    assert kinds.count(("downtime_start", 7)) == 3 and kinds.count(("downtime_end", 7)) == 2


def test_edge_state_survives_the_store_and_old_alarm_states_still_load():
    rule = _edge(on="true", debounce=5.0)
    _, state = run(rule, [(True, 1.0)])
    assert rule.load_state(state.to_bytes()) == state
    assert AlarmRule(AlarmRuleConfig("a", "plc", "door"), "gw", "M").load_state(
        b'{"code": 3, "since": 1.5, "start_id": "evt_x"}') == AlarmState(3, 1.5, "evt_x")


def test_bad_values_hold_the_state_and_unreadable_ones_are_refused_as_implausible():
    rule = _edge(on="true", debounce=1.0)
    _, state = run(rule, [(True, 1.0)])
    assert rule.apply(state, _s(None, 5.0, Quality.BAD_COMM)) == ([], state)
    for junk in ("junk", float("nan"), None):
        (ev,), after = rule.apply(state, _s(junk, 5.0))
        assert after == state and ev.kind == "implausible" and ev.data["rule"] == "door"


def test_an_alarm_word_outside_0_to_65535_is_refused_not_raised():
    rule = AlarmRule(AlarmRuleConfig("a", "plc", "door"), "gw", "M")
    for raw in (-5, 70000, 2.5, "E12"):
        (ev,), after = rule.apply(None, _s(raw, 1.0))
        assert after is None and ev.kind == "implausible" and "alarm code" in ev.data["reason"], raw
    (ev, *_), _ = rule.apply(None, _s(65535, 1.0))
    assert ev.kind == "alarm" and ev.data["code"] == 65535
    code_from_value = _edge(on="nonzero", alarm=True)
    (ev,), _ = code_from_value.apply(None, _s(1 << 40, 1.0))
    assert ev.kind == "implausible"


_steps = st.lists(st.tuples(st.booleans(), st.floats(min_value=0.05, max_value=5.0)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_steps, st.sampled_from([0.0, 0.5, 2.0]), st.sampled_from([0.0, 3.0]))
def test_arbitrary_sequences_never_flap(steps, debounce, min_duration):
    rule = _edge(on="true", debounce=debounce, min_duration=min_duration)
    ts, state, samples, events = 1000.0, None, [], []
    for value, dt in steps:
        ts += dt
        samples.append((value, ts))
        produced, state = rule.apply(state, _s(value, ts))
        events.extend(produced)
    kinds = [e.kind for e in events]
    # starts and ends alternate, beginning with a start; at most one start is left open
    assert all(k == ("downtime_start" if i % 2 == 0 else "downtime_end") for i, k in enumerate(kinds))
    for start, end in zip(events[::2], events[1::2]):
        assert end.data["start_event_id"] == start.id
        assert end.data["duration_s"] >= min_duration
    # every edge that counted was first seen at a sample and held at least the debounce after it
    first_seen = {iso_utc(t): i for i, (_, t) in enumerate(samples)}
    for event in events:
        i = first_seen[event.ts]
        value, t = samples[i]
        assert value is (event.kind == "downtime_start")
        changed = next((t2 for v2, t2 in samples[i:] if v2 != value), None)
        assert changed is None or changed - t >= debounce


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.01, max_value=1.99), max_size=40), st.booleans())
def test_blips_shorter_than_the_debounce_produce_no_event(gaps, steady):
    rule = _edge(on="true", debounce=2.0)
    _, state = run(rule, [(steady, 0.0), (steady, 5.0)])
    assert state.code == int(steady)
    ts, events = 5.0, []
    for gap in gaps:   # each blip: flip, then back to steady before the debounce is up
        produced, state = rule.apply(state, _s(not steady, ts + 0.001))
        events += produced
        produced, state = rule.apply(state, _s(steady, ts + 0.001 + gap))
        events += produced
        ts += 0.001 + gap + 0.5
    assert events == [] and state.code == int(steady) and state.pending is None
