"""Odoo API key rotation without downtime: plant -> `linebridge run` -> the Odoo sandbox, a key rotated with
`linebridge odoo rotate-key` while parts flow, the old key revoked in Odoo; nothing lost, nothing doubled,
no restart, and no key in any output. Plus the refusals (a key Odoo does not accept, an environment variable)
and the file-kept key swapped atomically."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway import config as config_mod
from gateway.credentials import CredentialError, SecretWatch, fingerprint, locate, store, use_fingerprint_key
from gateway.signing import DeviceKey
from gateway.demo import demo_config_text, odoo_summary, reconcile
from gateway.sandbox.odoo import OdooSandbox
from store.queue import Store
from tests.helpers import free_port, linebridge, port_open, stop, wait_for

OLD = "old-4f1c2a9e8d7b6c5a4f3e2d1c0b9a8f7e6d5c4b3a"
NEW = "new-9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b"


def _qty(url: str, key: str) -> float:
    def call(model, method, args, kw=None):
        body = {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
            "service": "object", "method": "execute_kw",
            "args": ["sandbox", 2, key, model, method, args] + ([kw] if kw else [])}}
        return httpx.post(f"{url}/jsonrpc", json=body, timeout=5).json()["result"]
    (wc,) = call("mrp.workcenter", "search", [[["code", "=", "CNC-01"]]])
    rows = call("mrp.workorder", "search_read", [[["workcenter_id", "=", wc]]], {"fields": ["qty_producing"]})
    return sum(r["qty_producing"] for r in rows)


def _rotate(cfg: Path, key: str, state: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "odoo", "rotate-key", "--config", str(cfg),
                           "--state-dir", str(state)], input=key + "\n", capture_output=True, text=True, timeout=60)


def _device_fingerprints(state: Path) -> None:
    """Fingerprint in this test as the gateway of `state` does (keyed by its device key)."""
    use_fingerprint_key(DeviceKey.load(state).fingerprint_key())


def _backlog(state: Path) -> int:
    store = Store(state / "store", readonly=True)
    try:
        return store.backlog("odoo")
    finally:
        store.close()


def test_a_key_rotated_under_load_loses_and_doubles_nothing_and_needs_no_restart(tmp_path):
    odoo = OdooSandbox(port=0, api_key=OLD)
    odoo.start()
    plant_port = free_port()
    truth_path = tmp_path / "truth.json"
    cfg_path = tmp_path / "gateway.toml"
    cfg_path.write_text(demo_config_text().replace("port = 5020", f"port = {plant_port}")
                        .replace("http://127.0.0.1:8069", odoo.url)
                        .replace('api_key = "admin"', f'api_key = "{OLD}"')
                        .replace("poll_interval = 0.5", "poll_interval = 0.2"))
    state, log = tmp_path / "state", tmp_path / "gateway.log"
    plant = linebridge(["sandbox", "plant", "--port", str(plant_port), "--duration", "12",
                        "--ground-truth", str(truth_path), "--seed", "11"], tmp_path / "plant.log")
    gw = None
    try:
        wait_for(lambda: port_open(plant_port), 20, "the plant")
        gw = linebridge(["run", "--config", str(cfg_path), "--state-dir", str(state)], log)
        wait_for(lambda: _qty(odoo.url, OLD) > 2, 30, "parts delivered with the old key")

        # a key Odoo does not know is refused before anything is written
        before = cfg_path.read_bytes()
        bad = _rotate(cfg_path, "not-a-key-odoo-knows-0123456789", state)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert "BLOCKER" in bad.stderr and "was not stored" in bad.stderr
        assert cfg_path.read_bytes() == before

        # the person makes a second key in Odoo, rotates, then revokes the first
        odoo.add_api_key(NEW)
        mid = _qty(odoo.url, OLD)
        done = _rotate(cfg_path, NEW, state)
        assert done.returncode == 0, done.stdout + done.stderr
        _device_fingerprints(state)
        assert f"revoke the old API key {fingerprint(OLD)}" in done.stdout
        assert fingerprint(NEW) in done.stdout
        assert config_mod.load(cfg_path).sinks["odoo"].api_key == NEW
        wait_for(lambda: "event=credential_rotated" in log.read_text(), 10, "the gateway to take the new key")
        odoo.revoke_api_key(OLD)
        assert gw.poll() is None
        wait_for(lambda: _qty(odoo.url, NEW) > mid + 2, 30, "parts delivered with the new key only")

        truth = wait_for(lambda: (t := json.loads(truth_path.read_text() or "null")) and t["final"] and t, 40,
                         "the plant to finish")
        parts = truth["machines"]["CNC-01"]["parts"]
        wait_for(lambda: _qty(odoo.url, NEW) == parts, 30, f"Odoo to show the plant's {parts} parts")
        wait_for(lambda: _backlog(state) == 0, 15, "an empty backlog")
        time.sleep(1.0)
        assert _qty(odoo.url, NEW) == parts
        view = asyncio.run(odoo_summary(config_mod.load(cfg_path)))
        assert reconcile(truth, view, poll=0.2) == [], (truth, view)

        text = log.read_text()
        assert text.count("event=started") == 1            # the same process throughout
        assert "alarm_sink_paused" not in text              # no call was refused: the old key outlived the swap
        assert stop(gw, signal.SIGTERM) == 0
        gw = None
        for out in (log.read_text(), done.stdout, done.stderr, bad.stdout, bad.stderr):
            assert OLD not in out and NEW not in out and "not-a-key-odoo-knows" not in out
    finally:
        for proc in (gw, plant):
            if proc is not None and proc.poll() is None:
                stop(proc, signal.SIGKILL)
        odoo.stop()


def test_a_key_kept_in_a_file_is_replaced_atomically_and_a_running_watch_sees_it(tmp_path):
    key_file = tmp_path / "odoo.key"
    key_file.write_text(OLD + "\n")
    os.chmod(key_file, 0o640)
    cfg = tmp_path / "site.toml"
    cfg.write_text(f'[sinks.odoo]\nurl = "http://127.0.0.1:1"\ndatabase = "x"\nlogin = "admin"\n'
                   f'api_key_file = "{key_file}"\n')
    line = tmp_path / "line3.toml"
    line.write_text("# the gateway's own file sets no key\n")
    source = locate([cfg, line], "odoo")
    assert (source.kind, source.target, source.layer) == ("file", str(key_file), cfg)
    t = [0.0]
    watch = SecretWatch([cfg, line], "odoo", "api_key", OLD, interval=1.0, clock=lambda: t[0])
    assert watch.poll() is None
    store(source, NEW)
    assert key_file.read_text() == NEW + "\n" and (key_file.stat().st_mode & 0o777) == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    t[0] += 0.5
    assert watch.poll() is None                    # not yet time to look
    t[0] += 1.0
    assert watch.poll() == NEW and watch.poll(force=True) is None
    # the gateway's own file now keeps a key inline: it wins over the site's file
    line.write_text(f'[sinks.odoo]\napi_key = "{OLD}"\n')
    t[0] += 2
    assert watch.poll() == OLD
    with pytest.raises(CredentialError) as refused:
        store(source, " spaced ")
    assert "spaced" not in str(refused.value)


def test_a_key_from_the_environment_is_not_rotated_and_says_what_to_do(tmp_path):
    cfg = tmp_path / "g.toml"
    cfg.write_text('[sinks.odoo]\nurl = "http://127.0.0.1:1"\ndatabase = "x"\nlogin = "admin"\n'
                   'api_key_env = "ODOO_KEY_FOR_TEST"\n')
    with pytest.raises(CredentialError) as exc:
        store(locate([cfg], "odoo"), NEW)
    assert "ODOO_KEY_FOR_TEST" in str(exc.value) and "api_key_file" in str(exc.value)
    assert NEW not in str(exc.value)


def test_an_mqtt_password_replaced_in_its_file_is_used_at_the_next_connect_without_a_restart(tmp_path):
    from tests.drivers.mqtt.broker import MosquittoBroker, Subscriber
    old_pw, new_pw = "first mqtt password", "second mqtt password"
    broker = MosquittoBroker(tmp_path / "broker", users={"line": old_pw, "watcher": "watcher pw"})
    broker.start()
    pw_file = tmp_path / "secrets" / "mqtt.pw"
    pw_file.parent.mkdir()
    pw_file.write_text(old_pw + "\n")
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f"""
[gateway]
id = "gw-pw"
site = "s"

[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1:{broker.port}"
username = "line"
password_file = "{pw_file}"
retry_cap = 1

[heartbeat]
sink = "up"
interval = 0.5

[files]
secrets = ["{pw_file.parent}"]
""")
    log = tmp_path / "gw.log"
    gw = linebridge(["run", "--config", str(cfg), "--state-dir", str(tmp_path / "state")], log)
    try:
        with Subscriber(broker.port, "linebridge/s/gw-pw/status", username="watcher", password="watcher pw") as sub:
            sub.wait_for(1, timeout=30)
        # first the broker: its password file changed and reloaded (SIGHUP), the gateway stays connected
        broker.users = {"line": new_pw, "watcher": "watcher pw"}
        broker._write_config()
        os.kill(broker.proc.pid, signal.SIGHUP)
        # then the gateway's: a password the broker refuses is not stored, the right one is
        wrong = subprocess.run([sys.executable, "-m", "gateway.cli", "mqtt", "rotate-password", "--config", str(cfg),
                                "--state-dir", str(tmp_path / "state")],
                               input="not the password\n", capture_output=True, text=True, timeout=60)
        assert wrong.returncode == 1 and "nothing was stored" in wrong.stderr, wrong.stdout + wrong.stderr
        assert pw_file.read_text() == old_pw + "\n"
        done = subprocess.run([sys.executable, "-m", "gateway.cli", "mqtt", "rotate-password", "--config", str(cfg),
                               "--state-dir", str(tmp_path / "state")],
                              input=new_pw + "\n", capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        _device_fingerprints(tmp_path / "state")
        assert pw_file.read_text() == new_pw + "\n" and fingerprint(new_pw) in done.stdout
        for out in (wrong.stdout, wrong.stderr, done.stdout, done.stderr):
            assert new_pw not in out and old_pw not in out and "not the password" not in out
        broker.restart()                                       # every connection ends: the gateway reconnects
        with Subscriber(broker.port, "linebridge/s/gw-pw/status", username="watcher", password="watcher pw") as sub:
            wait_for(lambda: any(json.loads(p)["state"] == "online" and not r for _, p, _, r in sub.messages), 30,
                     "a live status over the connection made with the new password")
        assert gw.poll() is None and log.read_text().count("event=started") == 1
        assert f"event=credential_rotated sink=up password={fingerprint(new_pw)}" in log.read_text()
        assert new_pw not in log.read_text() and old_pw not in log.read_text()
    finally:
        stop(gw)
        broker.stop()


def test_a_secret_is_fingerprinted_under_the_device_key_so_a_log_line_cannot_be_reversed(tmp_path):
    """A plain SHA-256 of a weak MQTT password (or an Odoo password used as a key) in a log could be looked
    up in a dictionary; the fingerprint is keyed by the device, stable for it, different on another."""
    import hashlib
    one, other = DeviceKey.load_or_create(tmp_path / "one"), DeviceKey.load_or_create(tmp_path / "other")
    use_fingerprint_key(one.fingerprint_key())
    first = fingerprint("password123")
    assert first.startswith("hmac:") and len(first) == len("hmac:") + 16
    assert hashlib.sha256(b"password123").hexdigest()[:16] not in first
    use_fingerprint_key(other.fingerprint_key())
    assert fingerprint("password123") != first
    use_fingerprint_key(DeviceKey.load(tmp_path / "one").fingerprint_key())
    assert fingerprint("password123") == first
