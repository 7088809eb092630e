"""`linebridge bench odoo --url` against each Odoo: a mixed backlog drained and alarm latency measured (figures
belong to the bench; the test checks that it runs and reports them)."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.real_odoo.harness import OdooDb
from tests.real_odoo.masterdata import prepare


def test_bench_odoo_url_drains_a_mixed_backlog_and_times_alarms(odoo: OdooDb, tmp_path) -> None:
    prepare(odoo)
    sink = odoo.sink_config()
    key = tmp_path / "key"
    key.write_text(sink["api_key"] + "\n")
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "bench", "odoo", "--url", sink["url"], "--database",
                          sink["database"], "--login", sink["login"], "--api-key-file", str(key), "--protocol",
                          sink["protocol"], "--events", "200", "--samples", "3", "--json"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.splitlines()[-1])
    assert r["left"] == 0 and r["events"] >= 200 and r["events_per_s"] > 0, r
    assert r["alarm_samples"] == 3 and 0 < r["alarm_p50_ms"] <= r["alarm_p95_ms"] <= r["alarm_max_ms"], r
