"""`linebridge queue ...`, `journal verify` and `bench store` on a state directory, as a person uses them."""
from __future__ import annotations

import json
import struct
import subprocess
import sys

import lmdb

from store.queue import Store

CLI = [sys.executable, "-m", "gateway.cli"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def _state(tmp_path) -> Store:
    s = Store(tmp_path / "store", sinks=["odoo"])
    s.append([{"id": f"evt_{i}", "kind": k, "ts": "2026-11-28T03:00:00.000Z", "data": {}}
              for i, k in enumerate(["production", "scrap", "production", "scrap"])])
    batch = s.read("odoo")
    s.ack("odoo", batch[:3], dead=[(batch[1], "ValidationError: no location")])
    return s


def test_queue_stats_reads_beside_a_live_writer(tmp_path):
    s = _state(tmp_path)  # stays open, as the running gateway would
    out = _run("queue", "stats", "--json", "--state-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    st = json.loads(out.stdout)
    assert st["classes"]["business"]["events"] == 1 and st["sinks"]["odoo"]["dead_letters"] == 1
    human = _run("queue", "stats", "--state-dir", str(tmp_path))
    assert "class business  events=1" in human.stdout and "sink odoo" in human.stdout
    s.close()


def test_dead_letters_list_show_replay_and_discard(tmp_path):
    _state(tmp_path).close()
    listed = _run("queue", "dlq", "list", "--state-dir", str(tmp_path))
    assert "odoo seq=2 event_id=evt_1 kind=scrap attempts=1" in listed.stdout
    assert "error='ValidationError: no location'" in listed.stdout
    letters = json.loads(_run("queue", "dlq", "list", "--json", "--state-dir", str(tmp_path)).stdout)
    assert [(d["seq"], d["event"]["id"], d["error"]) for d in letters] == [(2, "evt_1", "ValidationError: no location")]
    assert json.loads(_run("queue", "dlq", "list", "--json", "--kind", "production", "--state-dir",
                           str(tmp_path)).stdout) == []
    shown = json.loads(_run("queue", "dlq", "show", "odoo", "2", "--state-dir", str(tmp_path)).stdout)
    assert shown["event"]["id"] == "evt_1"
    assert _run("queue", "dlq", "replay", "odoo", "--kind", "scrap", "--by", "anna",
                "--state-dir", str(tmp_path)).returncode == 0
    s = Store(tmp_path / "store", sinks=["odoo"])
    assert [b.event["id"] for b in s.read("odoo")][0] == "evt_1"
    s.close()
    out = _run("queue", "dlq", "discard", "odoo", "--all", "--state-dir", str(tmp_path))
    assert out.returncode == 0 and "discard: 1 dead letter(s)" in out.stdout
    tail = [json.loads(line) for line in _run("journal", "tail", "--state-dir", str(tmp_path)).stdout.splitlines()]
    assert [(e["op"], e.get("by")) for e in tail][-2:] == [("replay", "anna"), ("discard", "cli")]


def test_queue_held_lists_what_waits_in_which_lane_and_why(tmp_path):
    s = _state(tmp_path)
    (last,) = s.read("odoo")
    s.ack("odoo", [], hold=[(last, "CNC-02", "waits for an open work order on work center 'CNC-02'", s.clock() - 30)])
    s.close()
    out = _run("queue", "held", "odoo", "--state-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    line, total = out.stdout.splitlines()
    assert line.startswith("odoo seq=4 event_id=evt_3 kind=scrap lane=CNC-02 held_for=3") and "open work order" in line
    assert total == "1 held event(s) of sink 'odoo'"
    (row,) = json.loads(_run("queue", "held", "odoo", "--json", "--state-dir", str(tmp_path)).stdout)
    assert row["lane"] == "CNC-02" and row["event"]["id"] == "evt_3"
    stats = json.loads(_run("queue", "stats", "--json", "--state-dir", str(tmp_path)).stdout)
    assert stats["sinks"]["odoo"]["held"] == 1


def test_journal_verify_passes_then_names_a_hand_edited_entry(tmp_path):
    _state(tmp_path).close()
    ok = _run("journal", "verify", "--state-dir", str(tmp_path))
    assert ok.returncode == 0 and "chain intact" in ok.stdout
    env = lmdb.open(str(tmp_path / "store"), max_dbs=16)
    db = env.open_db(b"journal")
    with env.begin(write=True) as txn:
        entry = json.loads(txn.get(struct.pack(">Q", 1), db=db))
        entry["items"][0][2] = "mrp.workorder,4242"
        txn.put(struct.pack(">Q", 1), json.dumps(entry).encode(), db=db)
    env.close()
    bad = _run("journal", "verify", "--state-dir", str(tmp_path))
    assert bad.returncode == 1 and "journal BROKEN at entry 1" in bad.stderr


def test_queue_commands_on_a_missing_state_dir_say_so(tmp_path):
    out = _run("queue", "stats", "--state-dir", str(tmp_path / "nope"))
    assert out.returncode == 1 and "no store under" in out.stderr


def test_bench_store_reports_figures_and_the_sqlite_baseline(tmp_path):
    out = _run("bench", "store", "--json", "--events", "2000", "--batch", "100", "--status-queued", "20000",
               "--rounds", "2")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    for key in ("durable_events_per_s", "single_events_per_s", "sqlite_events_per_s", "ratio",
                "read_ack_events_per_s", "bytes_per_event", "status_call_ms", "poll_p99_ms_queued",
                "verify_us_per_event", "verify_cpu_us_per_event", "raw_lmdb_events_per_s", "raw_lmdb_ratio"):
        assert r[key] > 0, key
    assert r["status_queued"] == 20000
    assert r["rounds"] == 2
