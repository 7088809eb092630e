"""`linebridge bench gateway` runs the whole gateway as a process against real peers and reports its figures."""
from __future__ import annotations

import json
import subprocess
import sys


def test_bench_gateway_measures_the_whole_process_against_bare_reads():
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "bench", "gateway", "--json", "--seconds", "3",
                          "--registers", "20", "--period", "0.2"], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout)
    # 20 values every 0.2 s reached the broker through Modbus -> store -> MQTT, each counted once
    assert 50 <= r["values_per_s"] <= 110, r
    for key in ("cpu_s_per_1000_values", "bytes_per_value", "rss_mib", "start_to_first_s",
                "bare_cpu_s_per_1000_values", "overhead_ratio", "floor_cpu_s_per_1000_values", "floor_ratio"):
        assert r[key] and r[key] > 0, key
    assert r["p50_ms"] <= r["p99_ms"]
    # the floor does the bare reads and more: signing, two synced commits, a publish awaited to its PUBACK
    assert r["floor_cpu_s_per_1000_values"] > r["bare_cpu_s_per_1000_values"], r
