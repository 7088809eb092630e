"""A tag's last hour in fixed memory (gateway.trend): buckets with low, high and last, a ring that wraps,
gaps for bad values, a bound on the tags kept."""
from __future__ import annotations

from drivers.base import Quality, Sample
from gateway.trend import Trend


def _s(tag: str, value: object, ts: float, quality: Quality = Quality.GOOD) -> Sample:
    return Sample(device="d", tag=tag, value=value, quality=quality, source_ts=ts)


def test_a_bucket_keeps_its_low_high_and_last() -> None:
    t = Trend(step=10)
    t.add([_s("p", 5, 1000.0), _s("p", 9, 1002.0), _s("p", 1, 1004.0), _s("p", 7, 1009.9), _s("p", 3, 1010.0)])
    assert t.series("p", 1011.0)["points"] == [[1000.0, 1.0, 9.0, 7.0], [1010.0, 3.0, 3.0, 3.0]]


def test_the_ring_keeps_one_window_in_fixed_memory() -> None:
    t = Trend(window=60, step=10)
    ring_before = None
    for i in range(100):                  # 1,000 s of one sample a second
        t.add([_s("p", i, 1000.0 + 10 * i)])
        if i == 0:
            ring_before = t.rings["p"].ts.buffer_info()
    pts = t.series("p", 1000.0 + 990)["points"]
    assert [p[3] for p in pts] == [94.0, 95.0, 96.0, 97.0, 98.0, 99.0]
    assert t.rings["p"].ts.buffer_info() == ring_before      # the same arrays, never grown
    assert len(t.rings["p"].ts) == 6


def test_bad_text_and_non_finite_values_are_not_drawn_and_booleans_are_0_and_1() -> None:
    t = Trend(step=10)
    t.add([_s("p", 4, 1000.0), _s("p", None, 1015.0, Quality.BAD_COMM), _s("p", float("nan"), 1025.0),
           _s("p", 6, 1035.0), _s("s", "text", 1000.0), _s("b", True, 1000.0), _s("b", False, 1001.0)])
    assert [p[0] for p in t.series("p", 1040.0)["points"]] == [1000.0, 1035.0]       # a gap between
    assert t.series("s", 1040.0) is None
    assert t.series("b", 1040.0)["points"] == [[1000.0, 0.0, 1.0, 0.0]]


def test_a_clock_step_back_is_not_drawn_over_the_newer_buckets() -> None:
    t = Trend(step=10)
    t.add([_s("p", 1, 2000.0), _s("p", 2, 1000.0), _s("p", 3, 2011.0)])
    assert [p[3] for p in t.series("p", 2020.0)["points"]] == [1.0, 3.0]


def test_tags_past_the_bound_are_counted_not_kept() -> None:
    t = Trend(step=10, max_tags=3)
    for _ in range(2):
        t.add([_s(f"t{i}", i, 1000.0) for i in range(5)])
    assert sorted(t.rings) == ["t0", "t1", "t2"] and t.dropped_tags == 2
