"""`linebridge soak` for two minutes with a fixed seed, as a subprocess: its JSON verdict.

The short run goes through every phase of the long one (kill -9 cycles with
wall-clock steps, Odoo and broker faults, a full state filesystem, a garbage
Modbus link, a long outage, the drain) at a smaller scale; Odoo must agree
with the plant exactly, and the broker must have every production and scrap
event at least once. The long run's figures are in docs/soak.md.
"""
from __future__ import annotations

import json
import subprocess
import sys

from gateway.soak.schedule import KINDS, plan


def test_the_plan_is_seeded_and_every_fault_fits_in_the_chaos_phase():
    a, b = plan(1800, seed=5, kills=110), plan(1800, seed=5, kills=110)
    assert a == b and a != plan(1800, seed=6, kills=110)
    assert {f.kind for f in a.faults} == set(KINDS)
    assert all(f.at + f.duration <= a.chaos_end for f in a.faults)
    assert [f.at for f in a.faults] == sorted(f.at for f in a.faults)
    assert a.chaos_end < a.outage_end < a.plant_end <= 1800
    assert set(a.offsets_h) == {-1, 0, 1}


def test_a_short_soak_loses_and_doubles_nothing_in_odoo(tmp_path):
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "soak", "--minutes", "2", "--seed", "7", "--json",
                           "--workdir", str(tmp_path), "--tmpfs-mib", "512"],
                          capture_output=True, text=True, timeout=900)
    lines = done.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {done.stderr[-3000:]}"
    result = json.loads(lines[-1])
    assert done.returncode == 0, (result, done.stderr[-3000:])
    assert result["ok"] and result["drained"]
    assert result["lost"] == 0 and result["doubled"] == 0
    assert result["parts"] > 100
    assert result["kills"] >= 3
    assert result["events"] > result["parts"] / 20 and result["max_backlog"] > 0
    assert result["failed_attempts_max"] > 10 and result["recovery_s"] is not None
    assert result["mqtt_lost"] == 0 and result["mqtt_doubled"] == 0 and result["mqtt_out_of_order"] == 0
    faults = sum(result[k] for k in ("odoo_5xx", "odoo_slow", "odoo_restarts", "odoo_down", "broker_restarts",
                                     "disk_full", "garbage_windows"))
    assert faults >= 4 and result["clock_steps"] >= 1
    assert isinstance(result["rss_growth_mib"], float) and isinstance(result["rss_outage_growth_mib"], float)
