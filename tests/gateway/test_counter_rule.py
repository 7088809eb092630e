"""The counter rule: increments, rollover, resets, bad samples, deterministic ids."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from drivers.base import Quality, Sample
from gateway.config import CounterRuleConfig
from gateway.rules.counter import CounterRule, CounterState, delta


def _rule(width: int = 32, initial: str = "baseline", window: int | None = None) -> CounterRule:
    cfg = CounterRuleConfig("parts", "cnc01", "parts", "production", width, initial,
                            window if window is not None else (1 << width) // 4)
    return CounterRule(cfg, "gw", "CNC-01")


def _s(value, quality=Quality.GOOD, ts=1_700_000_000.0) -> Sample:
    return Sample("cnc01", "parts", value, quality, ts)


def test_first_reading_is_a_baseline_by_default_and_counts_in_zero_mode():
    events, state = _rule().apply(None, _s(500))
    assert events == [] and state == CounterState(raw=500, ts=1_700_000_000.0)
    events, state = _rule(initial="zero").apply(None, _s(500))
    assert [e.data["quantity"] for e in events] == [500] and state.total == 500


def test_increment_becomes_production_with_quantity_and_running_total():
    rule = _rule()
    events, state = rule.apply(CounterState(raw=10, total=3), _s(14))
    (ev,) = events
    assert ev.kind == "production" and ev.data == {"quantity": 4, "counter": 14, "total": 7, "reset": False}
    assert ev.context == {"machine": "CNC-01"} and ev.source == {"device": "cnc01", "tag": "parts"}
    assert ev.ts == "2023-11-14T22:13:20.000Z" and state == CounterState(14, 0, 7, 1_700_000_000.0)


def test_repeated_value_gives_no_event():
    events, state = _rule().apply(CounterState(raw=10, total=3), _s(10))
    assert events == [] and state == CounterState(10, 0, 3, 1_700_000_000.0)


def test_bad_sample_holds_state_and_invents_nothing():
    prev = CounterState(raw=10, total=3)
    for q in (Quality.BAD_COMM, Quality.BAD_TIMEOUT, Quality.STALE):
        assert _rule().apply(prev, _s(None, q)) == ([], prev)


def test_16_bit_rollover_counts_across_the_wrap():
    events, state = _rule(width=16).apply(CounterState(raw=65530), _s(3))
    assert events[0].data["quantity"] == 9 and not events[0].data["reset"]


def test_32_bit_rollover_counts_across_the_wrap():
    events, _ = _rule(width=32).apply(CounterState(raw=2**32 - 2), _s(5))
    assert events[0].data["quantity"] == 7


def test_drop_that_is_not_a_wrap_is_a_reset_and_new_value_counts_from_zero():
    events, state = _rule(width=16).apply(CounterState(raw=30000, total=100), _s(3))
    assert events[0].data == {"quantity": 3, "counter": 3, "total": 103, "reset": True}
    assert state.epoch == 1


def test_reset_to_zero_gives_no_quantity_but_a_new_epoch():
    events, state = _rule().apply(CounterState(raw=500, total=500), _s(0))
    assert events == [] and state == CounterState(0, 1, 500, 1_700_000_000.0)


def test_same_signal_replayed_gives_the_same_event_id_and_a_different_one_otherwise():
    rule = _rule()
    a, _ = rule.apply(CounterState(raw=10, total=3), _s(14))
    b, _ = rule.apply(CounterState(raw=10, total=3), _s(14, ts=1_800_000_000.0))
    c, _ = rule.apply(CounterState(raw=14, total=7), _s(15))
    assert a[0].id == b[0].id != c[0].id
    other_gw = CounterRule(rule.cfg, "gw2", "CNC-01").apply(CounterState(raw=10, total=3), _s(14))[0]
    assert other_gw[0].id != a[0].id


@settings(max_examples=300, deadline=None)
@given(width=st.sampled_from([16, 32]), start=st.integers(min_value=0),
       steps=st.lists(st.integers(min_value=0, max_value=5000), max_size=60))
def test_sum_of_quantities_equals_parts_made_whatever_the_wraps(width, start, steps):
    """A counter read often enough (less than the window between reads) never loses a part."""
    modulus = 1 << width
    rule = _rule(width=width)
    raw = start % modulus
    _, state = rule.apply(None, _s(raw))
    counted = 0
    for step in steps:
        raw = (raw + step) % modulus
        events, state = rule.apply(state, _s(raw))
        counted += sum(e.data["quantity"] for e in events)
    assert counted == sum(steps) and state.total == sum(steps)


def test_delta_is_never_negative():
    assert delta(100, 50, 16, 16384) == (50, True)
    assert delta(65535, 0, 16, 16384) == (1, False)


def test_an_implausible_jump_is_marked_suspect_not_dropped():
    cfg = CounterRuleConfig("parts", "cnc01", "parts", "production", 32, "baseline", 2**30, max_rate=5.0)
    rule = CounterRule(cfg, "gw", "CNC-01")
    _, state = rule.apply(None, _s(100, ts=1000.0))
    events, state = rule.apply(state, _s(110, ts=1002.0))  # 10 parts in 2 s: fine at 5/s
    assert "suspect" not in events[0].data
    events, state = rule.apply(state, _s(60_000, ts=1003.0))  # a PLC glitch
    assert events[0].data["quantity"] == 59_890 and state.total == 59_900
    assert events[0].data["suspect"] == "59890 parts in 1.0 s exceeds max_rate 5/s (counter 110 -> 60000)"


def test_a_reading_no_counter_of_its_width_can_show_is_refused_not_masked():
    """`-5` after 130 was masked to 4,294,967,291 (4,294,967,161 phantom parts); now it is refused."""
    rule = _rule(width=32)
    state = CounterState(raw=130, total=130, ts=1_699_999_990.0)
    for raw, why in ((-5, "negative reading -5"), (99999999999999999999999, "counts 0..4294967295"),
                     (2**32, "got 4294967296"), (3.5, "whole number"), ("12", "whole number"),
                     (True, "whole number"), (float("nan"), "whole number"), (None, "whole number")):
        events, after = rule.apply(state, Sample("cnc01", "parts", raw, Quality.GOOD, 1_700_000_000.0,
                                                 origin="topic cnc/1 field parts"))
        (ev,) = events
        assert after == state, raw                        # the last trusted reading stays
        assert ev.kind == "implausible" and why in ev.data["reason"], (raw, ev.data)
        assert ev.data["origin"] == "topic cnc/1 field parts" and ev.data["rule"] == "parts"
        assert "quantity" not in ev.data
    assert rule.apply(state, _s(-5))[0][0].data["raw"] == -5
    assert rule.apply(state, _s(99999999999999999999999))[0][0].data["raw"] == "99999999999999999999999"
    events, after = rule.apply(state, _s(140))             # the next good reading counts from 130
    assert [e.data["quantity"] for e in events] == [10] and after.total == 140


def test_a_whole_float_reading_counts_and_a_16_bit_counter_refuses_65536():
    events, _ = _rule().apply(CounterState(raw=10, total=3), _s(14.0))
    assert events[0].data["quantity"] == 4
    events, _ = _rule(width=16).apply(CounterState(raw=10), _s(65536))
    assert events[0].kind == "implausible" and "16-bit counter counts 0..65535" in events[0].data["reason"]


def test_the_default_cap_holds_a_jump_beyond_a_thousand_parts_a_second_over_the_poll_interval():
    cfg = CounterRuleConfig("parts", "cnc01", "parts", "production", 32, "baseline", 2**30, poll_interval=2.0)
    rule = CounterRule(cfg, "gw", "CNC-01")
    _, state = rule.apply(None, _s(100, ts=1000.0))
    events, state = rule.apply(state, _s(2000, ts=1000.5))   # 1900 in half a second: within one 2 s poll
    assert "suspect" not in events[0].data
    events, state = rule.apply(state, _s(4_135_585_603, ts=1010.5))
    assert "exceeds max_rate 1000/s" in events[0].data["suspect"]
    off = CounterRule(CounterRuleConfig("parts", "cnc01", "parts", "production", 32, "baseline", 2**30,
                                        max_rate=0.0), "gw", "CNC-01")
    events, _ = off.apply(CounterState(raw=1, ts=999.0), _s(4_000_000_000, ts=1000.0))
    assert "suspect" not in events[0].data   # max_rate = 0: the person turned the check off


@settings(max_examples=300, deadline=None, derandomize=True)
@given(width=st.sampled_from([16, 32]), value=st.one_of(
    st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8), st.booleans(),
    st.none()))
def test_any_reading_is_counted_within_its_width_or_refused(width, value):
    state = CounterState(raw=7, total=7, ts=1_699_999_000.0)
    events, after = _rule(width=width).apply(state, _s(value))
    for ev in events:
        if ev.kind == "implausible":
            assert after == state
        else:
            assert 0 <= ev.data["counter"] < 1 << width and ev.data["quantity"] >= 0


def test_two_rules_refusing_the_same_reading_give_two_events():
    from gateway.rules.machine_state import MachineStateRule
    from gateway.rules.config import MachineStateRuleConfig
    counter, = _rule().apply(CounterState(raw=1, ts=1.0), _s("junk"))[0]
    state, = MachineStateRule(MachineStateRuleConfig("run", "cnc01", "parts"), "gw", "CNC-01").apply(
        None, _s("junk"))[0]
    assert counter.kind == state.kind == "implausible" and counter.id != state.id


def test_a_wall_clock_stepped_back_does_not_make_parts_suspect():
    """Found by the soak: a gateway restarted with its clock an hour behind saw "22 parts in 0.0 s"
    and held real parts as implausible. With no elapsed time to judge by, only the range checks hold."""
    cfg = CounterRuleConfig("parts", "cnc01", "parts", "production", 32, "baseline", 2**30, poll_interval=0.02)
    rule = CounterRule(cfg, "gw", "CNC-01")
    _, state = rule.apply(None, _s(266, ts=5000.0))
    events, state = rule.apply(state, _s(288, ts=5000.0 - 3600))   # the clock went back an hour
    assert events[0].data["quantity"] == 22 and "suspect" not in events[0].data
    events, _ = rule.apply(state, _s(4_000_000_000, ts=5000.0 - 3599))   # and forward again: judged
    assert "exceeds max_rate" in events[0].data["suspect"]
