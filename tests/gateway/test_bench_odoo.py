"""`linebridge bench odoo` runs end to end and reports the figures the issue asks for."""
from __future__ import annotations

import json
import subprocess
import sys


def test_bench_odoo_reports_naive_batched_ratio_and_alarm_latency():
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "bench", "odoo", "--json", "--events", "300",
                          "--batch", "100", "--samples", "5"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.splitlines()[-1])
    assert r["naive_events_per_s"] > 0 and r["batched_events_per_s"] > r["naive_events_per_s"]
    assert r["ratio"] > 1 and 0 < r["alarm_to_request_p50_ms"] <= r["alarm_to_request_p99_ms"]
