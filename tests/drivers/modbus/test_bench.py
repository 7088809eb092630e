"""`linebridge bench modbus`: a short real run returns every figure with sane values."""
from __future__ import annotations

import json
import math

from gateway.bench.modbus import main, run

KEYS = {"devices", "registers", "period_s", "phase_seconds", "values_per_s", "cpu_fraction",
        "cpu_s_per_1000_values", "requests_per_poll", "jitter_p99_ms", "polls", "bad_values",
        "values_per_s_uncoalesced", "cpu_fraction_uncoalesced",
        "cpu_s_per_1000_values_uncoalesced", "requests_per_poll_uncoalesced",
        "jitter_p99_ms_uncoalesced", "polls_uncoalesced", "bad_values_uncoalesced",
        "requests_ratio", "cpu_per_value_ratio", "scope", "poll_share", "kept_up",
        "poll_share_uncoalesced", "kept_up_uncoalesced"}


def test_short_run_reports_every_figure_with_sane_values():
    result = run(devices=2, registers=20, period=0.1, seconds=1.0)
    assert set(result) == KEYS and result["scope"] == "driver"
    ratio = result.pop("cpu_per_value_ratio")
    assert (ratio is None) == (not (result["kept_up"] and result["kept_up_uncoalesced"]))
    del result["scope"]
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in result.values())
    assert result["kept_up"] and result["poll_share"] > 0.5
    assert result["values_per_s"] > 0 and result["values_per_s_uncoalesced"] > 0
    # 2 devices x 20 tags every 0.1 s is 400 values/s at most
    assert result["values_per_s"] <= 400 * 1.2
    assert result["bad_values"] == 0 and result["bad_values_uncoalesced"] == 0
    assert result["requests_per_poll"] == 1.0  # 20 contiguous registers: one request
    assert result["requests_per_poll_uncoalesced"] == 20.0  # the baseline: one per tag
    assert result["requests_ratio"] == 20.0 > 1
    assert 0 < result["cpu_fraction"] <= 2.0  # 2 cores at most
    assert result["cpu_s_per_1000_values"] > 0
    assert result["jitter_p99_ms"] >= 0 and result["polls"] >= 4


def test_main_prints_one_json_object_or_a_table(capsys):
    assert main(["--json", "--devices", "1", "--registers", "5", "--seconds", "0.6"]) == 0
    out = capsys.readouterr().out
    assert set(json.loads(out)) == KEYS and out.count("\n") == 1
    assert main(["--devices", "1", "--registers", "5", "--seconds", "0.6"]) == 0
    table = capsys.readouterr().out
    assert "requests per poll" in table and "CPU s per 1000 values" in table
    assert main(["--devices", "0"]) == 2


def test_a_per_tag_phase_that_cannot_keep_up_says_so_instead_of_a_ratio(capsys):
    # 1000 requests per device every 100 ms: far more than one Python loop makes
    result = run(devices=1, registers=1000, period=0.1, seconds=2.0)
    assert result["kept_up"] and not result["kept_up_uncoalesced"]
    assert result["poll_share_uncoalesced"] < 0.9 and result["cpu_per_value_ratio"] is None
    assert main(["--devices", "1", "--registers", "1000", "--seconds", "2"]) == 0
    table = capsys.readouterr().out
    assert "no ratio: a phase could not keep up" in table and "driver's own figures" in table
