"""Threshold, weight and scan rules: hysteresis, quality checks, consumption, fills, scanned context."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from drivers.base import Quality, Sample
from gateway.context import MachineContext
from gateway.events import iso_utc
from gateway.rules.config import ScanRuleConfig, ThresholdRuleConfig, WeightRuleConfig
from gateway.rules.scan import ScanRule
from gateway.rules.threshold import ThresholdRule
from gateway.rules.weight import WeightRule


def _s(value, ts: float, quality=Quality.GOOD, tag: str = "x") -> Sample:
    return Sample("dev", tag, value, quality, ts)


def run(rule, values, state=None, start=100.0):
    events = []
    for i, value in enumerate(values):
        produced, state = rule.apply(state, _s(value, start + i))
        events.extend(produced)
    return events, state


def _due(**kw) -> ThresholdRule:
    return ThresholdRule(ThresholdRuleConfig("wear", "dev", "x", high=100.0, low=80.0, **kw), "gw", "CNC-01")


def test_crossing_high_is_one_maintenance_due_and_it_re_arms_only_below_low():
    events, state = run(_due(code=900), [50, 99, 100, 120, 95, 101, 85, 150, 79, 100.5])
    assert [e.data for e in events] == [{"value": 100.0, "limit": 100.0, "tag": "x", "code": 900},
                                        {"value": 100.5, "limit": 100.0, "tag": "x", "code": 900}]
    assert events[0].kind == "maintenance_due" and not state.armed


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=200, allow_nan=False), max_size=80))
def test_hysteresis_never_flaps(values):
    events, _ = run(_due(), values)
    # each maintenance_due fired at or above high; between two of them the value went below low
    due_times = {e.ts for e in events}
    idx = [i for i in range(len(values)) if iso_utc(100.0 + i) in due_times]
    assert len(idx) == len(events)
    assert all(values[i] >= 100.0 for i in idx)
    for a, b in zip(idx, idx[1:]):
        assert any(v < 80.0 for v in values[a:b])
    # and every crossing from below low to high fired
    armed, expected = True, 0
    for v in values:
        if armed and v >= 100.0:
            armed, expected = False, expected + 1
        elif v < 80.0:
            armed = True
    assert len(events) == expected


def test_quality_result_per_sample_against_the_limits():
    rule = ThresholdRule(ThresholdRuleConfig("dia", "dev", "x", emit="quality_result", high=10.1, low=9.9,
                                             characteristic="diameter", unit="mm", on_change=True), "gw", "M")
    events, state = run(rule, [10.0, 10.0, 10.2, 9.9, "bad"])
    *results, refused = events
    assert [(e.kind, e.data["passed"], e.data["value"]) for e in results] == [
        ("quality_result", True, 10.0), ("quality_result", False, 10.2), ("quality_result", True, 9.9)]
    assert refused.kind == "implausible" and refused.data["raw"] == "bad" and state.last == 9.9
    assert events[0].data == {"passed": True, "characteristic": "diameter", "value": 10.0, "unit": "mm",
                              "low": 9.9, "high": 10.1}


def test_a_stable_weight_drop_beyond_min_change_is_consumption_and_refills_are_not():
    rule = WeightRule(WeightRuleConfig("hopper", "dev", "x", "consumption", "PELLET-PP", "kg", 0.5), "gw", "M")
    events, state = run(rule, [100.0, 99.8, 99.6, 99.2, 150.0, 150.1, 140.0])
    assert [e.data["quantity"] for e in events] == [0.8, 10.0]
    assert events[0].data["material"] == "PELLET-PP" and events[0].data["unit"] == "kg"
    assert events[0].kind == "consumption" and state.baseline == 140.0


def test_unstable_and_stale_weights_are_ignored_and_non_numbers_refused():
    rule = WeightRule(WeightRuleConfig("hopper", "dev", "x", "consumption", "M1"), "gw", "M")
    _, state = run(rule, [100.0])
    assert rule.apply(state, _s(None, 200.0, Quality.STALE)) == ([], state)
    for junk in (True, float("inf"), float("nan"), "12 kg", 10 ** 400):
        (ev,), after = rule.apply(state, _s(junk, 200.0))
        assert after == state and ev.kind == "implausible" and "expected a" in ev.data["reason"], junk


def test_each_new_fill_above_min_weight_is_one_quality_result():
    rule = WeightRule(WeightRuleConfig("fill", "dev", "x", "fill", unit="g", min_weight=10.0, low=495.0,
                                       high=505.0), "gw", "M")
    events, _ = run(rule, [0.0, 500.2, 500.2, 501.0, 2.0, 490.0, 490.0, 0.0])
    assert [(e.data["value"], e.data["passed"]) for e in events] == [(500.2, True), (490.0, False)]
    assert events[0].kind == "quality_result" and events[0].data["unit"] == "g"


def _scan() -> ScanRule:
    return ScanRule(ScanRuleConfig("scan", "dev", "x", (("work_order", "WO"), ("lot", "L(?P<value>\\d+)"),
                                                      ("operator", "B\\d+$"))), "gw", "PACK-01")


def test_scans_set_operator_lot_and_work_order_and_unknown_codes_change_nothing():
    rule = _scan()
    events, ctx = run(rule, ["B4711", "L0815", "WO/2026/0042", "XYZ", "B12x", ""])
    assert ctx == MachineContext(operator="B4711", lot="0815", work_order="WO/2026/0042")
    assert [(e.data["key"], e.data["value"]) for e in events] == [
        ("operator", "B4711"), ("lot", "0815"), ("work_order", "WO/2026/0042"), (None, None), (None, None)]
    assert all(e.kind == "scan" for e in events) and rule.state_key == "context/PACK-01"
    again, _ = run(_scan(), ["B4711"])
    assert again[0].id == events[0].id


def test_a_new_badge_replaces_the_operator():
    _, ctx = run(_scan(), ["B1", "L5"])
    _, ctx = run(_scan(), ["B2"], ctx, start=500.0)
    assert ctx == MachineContext(operator="B2", lot="5")
