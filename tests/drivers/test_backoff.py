"""Backoff stays finite and capped however long a peer stays away (a year of retries and more)."""
from __future__ import annotations

import math

from hypothesis import given, settings, strategies as st

from drivers.base import Backoff


def test_a_million_consecutive_failures_never_raise_and_never_exceed_the_cap():
    # the 1,025th call used to raise OverflowError (2.0 ** 1024), killing the task that retried
    backoff = Backoff(initial=0.5, cap=60.0)
    top = 0.0
    for _ in range(1_000_000):
        delay = backoff.next_delay()
        if delay > top:
            top = delay
    assert 0 < top <= 60.0
    assert backoff.attempt == 1_000_000  # still counts the failures, for the logs


def test_delays_reach_the_cap_with_jitter_below_it_and_start_again_after_reset():
    backoff = Backoff(initial=1.0, cap=8.0, rng=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    backoff.reset()
    assert Backoff(initial=1.0, cap=8.0, rng=lambda: 0.0).next_delay() == 0.5  # equal jitter: never zero
    assert backoff.next_delay() == 1.0


@settings(max_examples=300, deadline=None)
@given(initial=st.floats(min_value=1e-6, max_value=1e6), cap=st.floats(min_value=1e-6, max_value=1e9),
       factor=st.floats(min_value=1.0, max_value=1e6), attempt=st.integers(min_value=0, max_value=10**15),
       jitter=st.floats(min_value=0.0, max_value=1.0))
def test_next_delay_is_finite_positive_and_capped_after_any_number_of_failures(initial, cap, factor, attempt,
                                                                                 jitter):
    backoff = Backoff(initial=initial, cap=cap, factor=factor, rng=lambda: jitter)
    backoff.attempt = attempt  # as if that many consecutive failures had happened
    for _ in range(3):
        delay = backoff.next_delay()
        assert math.isfinite(delay)
        assert 0 < delay <= max(cap, 0.0)
        assert delay <= cap
