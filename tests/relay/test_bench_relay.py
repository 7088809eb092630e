"""`linebridge bench relay` measures one relay's intake against a real mosquitto and reports its figures."""
from __future__ import annotations

import json
import subprocess
import sys


def test_bench_relay_stores_every_event_once_and_reports_rate_and_delay():
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "bench", "relay", "--json", "--events", "1000",
                          "--batch", "100", "--rate", "200", "--latency-seconds", "1"],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout)
    assert r["stored"] == 1000 and r["quarantined"] == 0, r
    assert r["events_per_s"] > 0 and r["verify_us_per_event"] > 0
    lat = r["publish_to_stored"]
    assert lat["stored"] == lat["events"] == 200 and 0 < lat["p50_ms"] <= lat["p99_ms"], lat
