"""`journal verify` and `queue dlq replay` on a keyed journal, with and without the device key."""
from __future__ import annotations

import json
import subprocess
import sys

from gateway.signing import DeviceKey, key_path
from store.queue import Store, StoreOptions

CLI = [sys.executable, "-m", "gateway.cli"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def _keyed_state(tmp_path) -> DeviceKey:
    key = DeviceKey.load_or_create(tmp_path)
    s = Store(tmp_path / "store", sinks=["odoo"], options=StoreOptions(journal_key=key.journal_key()))
    s.append([{"id": f"evt_{i}", "kind": "production", "data": {}} for i in range(3)])
    batch = s.read("odoo")
    s.ack("odoo", batch, dead=[(batch[1], "ValidationError: no location")])
    s.close()
    return key


def test_a_replay_from_the_cli_is_journaled_keyed_and_the_journal_verifies_with_the_macs(tmp_path):
    _keyed_state(tmp_path)
    out = _run("queue", "dlq", "replay", "odoo", "--seq", "2", "--by", "alice", "--state-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    v = _run("journal", "verify", "--state-dir", str(tmp_path))
    assert v.returncode == 0, v.stderr
    assert v.stdout.strip() == "journal ok: 3 entries, chain intact; entries 1..3 keyed (MACs checked)"


def test_without_the_device_key_a_replay_is_refused_and_verify_says_what_it_did_not_check(tmp_path):
    _keyed_state(tmp_path)
    key_path(tmp_path).rename(tmp_path / "elsewhere.key")      # a user who cannot read the key
    out = _run("queue", "dlq", "replay", "odoo", "--all", "--state-dir", str(tmp_path))
    assert out.returncode == 1 and "the journal is keyed" in out.stderr
    v = _run("journal", "verify", "--state-dir", str(tmp_path))
    assert v.returncode == 0 and "MACs NOT checked" in v.stdout and "no device key" in v.stderr
    assert "journal ok: 2 entries" in v.stdout


def test_a_checkpoint_made_by_hand_matches_until_the_journal_is_cut(tmp_path):
    key = _keyed_state(tmp_path)
    made = _run("journal", "checkpoint", "--gateway", "gw1", "--state-dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    cp = json.loads(made.stdout)
    assert (cp["n"], cp["gateway"], cp["sig"]["kid"]) == (2, "gw1", key.kid)
    ok = _run("journal", "verify", "--checkpoint", made.stdout, "--key", key.public.b64,
              "--state-dir", str(tmp_path))
    assert ok.returncode == 0 and "matches: entry 2" in ok.stdout
    (tmp_path / "store" / "data.mdb").unlink()              # the whole store replaced by an empty one
    Store(tmp_path / "store", sinks=["odoo"]).close()
    cut = _run("journal", "verify", "--checkpoint", made.stdout, "--state-dir", str(tmp_path))
    assert cut.returncode == 1 and "TRUNCATED: the journal ends at entry 0" in cut.stderr
