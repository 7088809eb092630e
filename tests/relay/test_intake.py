"""The relay's judgement of one message, the key registry and the quarantine, without a broker.

Every refusal reason is produced by a real envelope signed (or forged) with a
real device key; the registry and the quarantine are real files.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from gateway.errors import ConfigError
from gateway.events import iso_utc
from gateway.relay import config as relay_config
from gateway.relay.intake import Judge
from gateway.relay.quarantine import Quarantine
from gateway.relay.registry import Registry, RegistryError
from gateway.signing import DeviceKey

TOPIC = "linebridge/site/gw-1/events/scrap"
NOW = 1_800_000_000.0


def _envelope(key: DeviceKey, gateway: str = "gw-1", ts: float = NOW, quantity: float = 2, n: int = 1) -> dict:
    env = {"schema": "linebridge.event/1", "id": f"evt_{n:032x}", "seq": 7, "kind": "scrap", "ts": iso_utc(ts),
           "gateway": gateway, "source": {"device": "cnc01", "tag": "scrap"}, "data": {"quantity": quantity},
           "context": {"machine": "CNC-01"}}
    return key.sign(env)


@pytest.fixture
def keys(tmp_path):
    return DeviceKey.load_or_create(tmp_path / "gw1"), DeviceKey.load_or_create(tmp_path / "other")


@pytest.fixture
def judge(tmp_path, keys):
    registry = Registry(tmp_path / "relay" / "gateways.json")
    registry.register("gw-1", keys[0].public.b64)
    return Judge(registry, max_age_s=6 * 86400, max_skew_s=600, clock=lambda: NOW)


def _reason(judge: Judge, env: dict, topic: str = TOPIC) -> str | None:
    return judge.judge(topic, json.dumps(env).encode()).reason


def test_a_registered_gateways_envelope_passes_with_its_gateway_seq_unsigned(judge, keys):
    env = _envelope(keys[0])
    verdict = judge.judge(TOPIC, json.dumps(dict(env, seq=99)).encode())
    assert verdict.ok and verdict.envelope["id"] == env["id"]


def test_each_refusal_names_its_reason(judge, keys):
    good, stranger = keys
    assert _reason(judge, dict(_envelope(good), data={"quantity": 3})).startswith("bad signature: ")
    assert _reason(judge, _envelope(stranger)).startswith("unregistered key: ")
    assert _reason(judge, _envelope(good, gateway="gw-2")).startswith("gateway mismatch: ")
    assert _reason(judge, _envelope(good, ts=NOW - 7 * 86400)).startswith("replayed: ")
    assert _reason(judge, _envelope(good, ts=NOW + 3600)).startswith("implausible: ")
    assert _reason(judge, _envelope(good, quantity=-1)).startswith("implausible: data.quantity")
    assert _reason(judge, _envelope(good), topic="linebridge/site/gw-1/events/production").startswith("schema: ")
    assert _reason(judge, dict(_envelope(good), kind="telemetry")).startswith("schema: ")
    assert judge.judge(TOPIC, b"not json").reason.startswith("schema: not JSON")
    unsigned = _envelope(good)
    del unsigned["sig"]
    assert _reason(judge, unsigned).startswith("schema: sig")


def test_a_message_no_check_foresaw_is_quarantined_not_raised(judge, keys):
    assert judge.judge(TOPIC, b"[" * 100_000 + b"]" * 100_000).reason.startswith("schema: ")
    assert judge.judge(TOPIC, b" " * (300 * 1024)).reason.startswith("schema: 307200 bytes")
    odd = dict(_envelope(keys[0]), sig={"kid": ["not", "a", "string"]})
    assert _reason(judge, odd).startswith("unregistered key")
    weird = dict(_envelope(keys[0]), data={"quantity": float("nan")})
    assert _reason(judge, weird).startswith(("bad signature", "implausible"))


def test_a_key_registered_for_one_gateway_is_refused_for_another(tmp_path, keys):
    registry = Registry(tmp_path / "gateways.json")
    entry = registry.register("gw-1", keys[0].public.b64)
    assert entry.key.kid == keys[0].kid
    with pytest.raises(RegistryError, match="already registered for gateway 'gw-1'"):
        registry.register("gw-2", keys[0].public.b64)
    registry.register("gw-1", keys[1].public.b64)      # a replaced device key
    again = Registry(tmp_path / "gateways.json")
    assert again.by_gateway["gw-1"].key.kid == keys[1].kid and keys[0].kid not in again.by_kid


def test_a_relay_sees_a_registration_made_while_it_runs(tmp_path, keys):
    path = tmp_path / "gateways.json"
    running = Registry(path)
    judge = Judge(running, 86400, 600, clock=lambda: NOW)
    assert _reason(judge, _envelope(keys[0])).startswith("unregistered key")
    time.sleep(0.01)
    Registry(path).register("gw-1", keys[0].public.b64)   # the admin's CLI, another process
    assert running.reload()
    assert _reason(judge, _envelope(keys[0])) is None


def test_a_broken_registry_file_is_reported_once_and_the_loaded_keys_stay(tmp_path, keys):
    path = tmp_path / "gateways.json"
    running = Registry(path)
    running.register("gw-1", keys[0].public.b64)
    time.sleep(0.01)
    path.write_text('{"gateways": {"gw-1": {"public_key": "not base64!"}}}')
    with pytest.raises(RegistryError, match="not base64"):
        running.reload()
    assert running.reload() is False and keys[0].kid in running.by_kid


def test_the_quarantine_keeps_refusals_across_restarts_and_gives_them_up_by_id(tmp_path):
    q = Quarantine(tmp_path / "quarantine.jsonl")
    q.add([("t/a", b'{"x":1}', "bad signature: no"), ("t/b", b"\xff", "schema: not JSON")])
    again = Quarantine(tmp_path / "quarantine.jsonl")
    assert [(e["id"], e["reason"]) for e in again.entries()] == [(1, "bad signature: no"), (2, "schema: not JSON")]
    again.add([("t/c", b"{}", "replayed: old")])
    assert [e["id"] for e in again.take({1, 3})] == [1, 3]
    assert [e["id"] for e in Quarantine(tmp_path / "quarantine.jsonl").entries()] == [2]


def _cfg_text(state, extra: str = "") -> str:
    return f"""
[relay]
id = "r1"
state_dir = "{state}"
{extra}
[broker]
url = "mqtt://127.0.0.1:1883"
group = "relays"

[odoo]
url = "http://127.0.0.1:8069"
database = "sandbox"
login = "admin"
api_key = "admin"
"""


def test_the_relay_config_names_every_problem_with_its_key_path(tmp_path):
    path = tmp_path / "relay.toml"
    path.write_text(_cfg_text(tmp_path / "s").replace('group = "relays"', 'group = "a/b"\ntopics = ["$share/x/y"]')
                    .replace('login = "admin"\n', "") + "\n[extra]\n")
    with pytest.raises(ConfigError) as err:
        relay_config.load(path)
    text = "\n".join(err.value.problems)
    for key in ("broker.group", "broker.topics[0]", "odoo.login", "extra"):
        assert key in text, text
    path.write_text(_cfg_text(tmp_path / "s"))
    cfg = relay_config.load(path)
    assert cfg.broker.filters() == ["$share/relays/linebridge/+/+/events/#"]
    assert cfg.broker.link.client_id == "linebridge-relay-r1" and cfg.odoo.name == "odoo"
    path.write_text(_cfg_text(tmp_path / "s").replace('group = "relays"', 'group = ""\ntopics = ["a/gw-1/events/#"]'))
    assert relay_config.load(path).broker.filters() == ["a/gw-1/events/#"]


def test_register_prints_the_fingerprint_and_quarantine_lists_reasons(tmp_path, keys):
    path = tmp_path / "relay.toml"
    path.write_text(_cfg_text(tmp_path / "s"))
    cli = [sys.executable, "-m", "gateway.cli", "relay"]
    out = subprocess.run([*cli, "register", "gw-1", keys[0].public.b64, "--config", str(path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and keys[0].kid in out.stdout, out.stderr
    bad = subprocess.run([*cli, "register", "gw-2", "bm90IGEga2V5", "--config", str(path)],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "refused" in bad.stderr
    Quarantine(tmp_path / "s" / "quarantine.jsonl").add([("t/a", b"{}", "unregistered key: key id 'x'")])
    listed = subprocess.run([*cli, "quarantine", "--json", "--config", str(path)],
                            capture_output=True, text=True, timeout=30)
    assert [e["reason"] for e in json.loads(listed.stdout)] == ["unregistered key: key id 'x'"]
    shown = subprocess.run([*cli, "quarantine", "--show", "1", "--config", str(path)],
                           capture_output=True, text=True, timeout=30)
    assert json.loads(shown.stdout)["topic"] == "t/a"
    gone = subprocess.run([*cli, "quarantine", "--discard", "1", "--config", str(path)],
                          capture_output=True, text=True, timeout=30)
    assert gone.returncode == 0 and Quarantine(tmp_path / "s" / "quarantine.jsonl").entries() == []


def test_the_shipped_sample_config_is_valid(monkeypatch):
    from pathlib import Path
    monkeypatch.setenv("MQTT_PASSWORD", "x")
    monkeypatch.setenv("ODOO_API_KEY", "y")
    cfg = relay_config.load(Path(relay_config.__file__).with_name("sample.toml"))
    assert cfg.broker.link.tls and cfg.broker.filters() == ["$share/linebridge-relay/linebridge/+/+/events/#"]


def test_the_quarantine_stays_bounded_in_entries_and_bytes_under_a_flood_of_forgeries(tmp_path):
    """A forger with publish rights must not fill the relay's disk: batches of odd sizes (so no entry
    count lands on a round number) of big payloads keep the file within its bounds, newest kept."""
    q = Quarantine(tmp_path / "quarantine.jsonl", limit=200, max_bytes=64 * 1024)
    for batch in range(300):
        q.add([("gw/events/production", b"x" * 3000 + str(batch * 7 + i).encode(), "bad signature")
               for i in range(7)])
        assert (tmp_path / "quarantine.jsonl").stat().st_size <= 64 * 1024 + 7 * 3200
    entries = q.entries()
    assert 0 < len(entries) <= 200 and entries[-1]["payload"].endswith(str(299 * 7 + 6))
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    huge = Quarantine(tmp_path / "huge.jsonl")
    huge.add([("t", b"y" * 1_000_000, "too large")])
    (kept,) = huge.entries()
    assert kept["size"] == 1_000_000 and len(kept["payload"]) <= 16 * 1024
