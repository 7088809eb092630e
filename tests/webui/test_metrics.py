"""/metrics: exact values at any size (a counter above 999,999 used to move in steps of 6 significant digits),
read back with Prometheus' own exposition-format parser (prometheus_client)."""
from __future__ import annotations

from typing import Any

from hypothesis import given, settings, strategies as st
from prometheus_client.parser import text_string_to_metric_families

from webui.metrics import render

YEAR_AT_1KHZ = 365 * 24 * 3600 * 1000  # 31,536,000,000 samples: a year of a fast poll


def _status(**over: Any) -> dict[str, Any]:
    st_: dict[str, Any] = {"uptime": 31_536_000.5, "read": YEAR_AT_1KHZ, "bad_samples": 1_000_000_001,
                           "events": 4_294_967_297, "stored": 4_294_967_296, "refused": 0,
                           "sinks": {"odoo": {"delivered": 1_234_567_891, "dead_lettered": 7,
                                              "retries": 1_000_003, "state": "retrying",
                                              "call_latency": {"buckets": {"0.1": 999_999_999, "1.0": 1_000_000_123},
                                                               "count": 1_000_000_124, "sum": 123456.789}}},
                           "devices": {"cnc01": {"connected": True, "reads": 2**53 + 1, "errors": 1_000_001,
                                                 "poll_latency_ms": 12.5}},
                           "tasks": {"sink:odoo": {"state": "restarting", "restarts": 1_000_000_007},
                                     "heartbeat": {"state": "running", "restarts": 0}},
                           "healthy": False}
    return st_ | over


STATS = {"classes": {"business": {"events": 1_000_000_000, "bytes": 987_654_321_123, "evicted": 0},
                     "telemetry": {"events": 5, "bytes": 10, "evicted": 12_345_678_901}},
         "map_used": 987_654_321_123, "map_size": 1_099_511_627_776,
         "sinks": {"odoo": {"backlog": 1_000_000_001, "dead_letters": 3, "held": 2}}}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_counters_above_a_billion_are_exact_for_a_real_parser():
    samples = _samples(render(_status(), STATS))
    assert samples[("linebridge_intake_read_total", ())] == YEAR_AT_1KHZ
    assert samples[("linebridge_intake_events_total", ())] == 4_294_967_297
    assert samples[("linebridge_delivered_total", (("sink", "odoo"),))] == 1_234_567_891
    assert samples[("linebridge_sink_retries_total", (("sink", "odoo"),))] == 1_000_003
    assert samples[("linebridge_queue_depth", (("sink", "odoo"),))] == 1_000_000_001
    assert samples[("linebridge_store_map_used_bytes", ())] == 987_654_321_123
    assert samples[("linebridge_store_evicted_total", (("cls", "telemetry"),))] == 12_345_678_901
    assert samples[("linebridge_device_errors_total", (("device", "cnc01"),))] == 1_000_001
    assert samples[("linebridge_odoo_call_seconds_bucket", (("le", "1.0"), ("sink", "odoo")))] == 1_000_000_123
    assert samples[("linebridge_odoo_call_seconds_sum", (("sink", "odoo"),))] == 123456.789
    assert samples[("linebridge_uptime_seconds", ())] == 31_536_000.5
    assert samples[("linebridge_device_poll_latency_seconds", (("device", "cnc01"),))] == 0.0125


def test_the_supervised_tasks_restarts_and_health_are_exposed():
    samples = _samples(render(_status(), STATS))
    assert samples[("linebridge_task_restarts_total", (("task", "sink:odoo"),))] == 1_000_000_007
    assert samples[("linebridge_task_restarts_total", (("task", "heartbeat"),))] == 0
    assert samples[("linebridge_task_up", (("task", "heartbeat"),))] == 1
    assert samples[("linebridge_task_up", (("task", "sink:odoo"),))] == 0
    assert samples[("linebridge_healthy", ())] == 0


@settings(max_examples=200, deadline=None)
@given(n=st.integers(min_value=0, max_value=2**63), x=st.floats(min_value=0, max_value=1e15, allow_nan=False))
def test_any_counter_and_gauge_value_survives_the_round_trip(n, x):
    samples = _samples(render(_status(read=n, uptime=x), STATS))
    assert samples[("linebridge_intake_read_total", ())] == n  # the parser reads integers as int: exact
    assert samples[("linebridge_uptime_seconds", ())] == x
