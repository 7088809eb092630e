"""Signing: the device key, the canonical form, the pipeline signs before the append, `keys show`."""
from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json

import pytest

from drivers.base import Quality, Sample
from gateway import cli
from gateway import config as config_mod
from gateway.events import Event, event_id
from gateway.pipeline import DevicePipeline, IntakeStats
from gateway.signing import DeviceKey, PublicKey, canonical, verify
from store.committer import GroupCommitter
from store.queue import Store


def _event(total: int = 5) -> dict:
    return Event(id=event_id("gw", "cnc01/parts", f"0:{total}"), kind="production",
                 ts="2026-11-28T03:00:00.000Z", gateway="gw", source={"device": "cnc01", "tag": "parts"},
                 data={"quantity": 2, "total": total, "note": "geprüft✓"},
                 context={"machine": "CNC-01"}).to_dict()


def test_the_key_is_made_once_private_to_its_owner_and_named_by_its_fingerprint(tmp_path):
    assert DeviceKey.load(tmp_path) is None
    key = DeviceKey.load_or_create(tmp_path)
    path = tmp_path / "keys" / "device.key"
    assert path.stat().st_mode & 0o777 == 0o600 and (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")   # PEM PKCS8
    again = DeviceKey.load_or_create(tmp_path)
    assert again.public.raw == key.public.raw and len(key.public.raw) == 32
    assert key.kid == hashlib.sha256(key.public.raw).hexdigest()[:16]


def test_the_key_file_is_the_pkcs8_cryptography_writes_and_other_forms_are_still_read_or_refused(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.signing import KeyFileError, pkcs8_pem
    private = Ed25519PrivateKey.generate()
    written = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    assert pkcs8_pem(private.private_bytes_raw()) == written          # byte for byte
    path = tmp_path / "keys" / "device.key"
    path.parent.mkdir()
    path.write_bytes(written)                                          # a key made by an earlier version
    assert DeviceKey.load(tmp_path).public.raw == private.public_key().public_bytes_raw()
    path.write_bytes(written.replace(b"\n", b"\r\n"))                   # edited on Windows: same key
    assert DeviceKey.load(tmp_path).public.raw == private.public_key().public_bytes_raw()
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(other)
    with pytest.raises(KeyFileError, match="is not an Ed25519 key"):
        DeviceKey.load(tmp_path)
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyFileError, match="is not a PEM PKCS8 private key"):
        DeviceKey.load(tmp_path)


def test_the_canonical_form_leaves_out_sig_and_seq_and_is_compact_sorted_utf8():
    ev = _event()
    ev["seq"] = 42
    ev["sig"] = {"alg": "Ed25519", "kid": "x", "value": "y"}
    body = canonical(ev)
    assert b'"seq"' not in body and b'"sig"' not in body
    assert body.startswith('{"context":{"machine":"CNC-01"},"data":{"note":"geprüft✓","quantity":2,"total":5},'
                           '"gateway":"gw","id":"evt_'.encode("utf-8"))
    assert body.endswith(b'"kind":"production","schema":"linebridge.event/1",'
                         b'"source":{"device":"cnc01","tag":"parts"},"ts":"2026-11-28T03:00:00.000Z"}')


def test_a_signature_survives_the_store_and_any_change_to_a_signed_field_breaks_it(tmp_path):
    key = DeviceKey.load_or_create(tmp_path / "state")
    store = Store(tmp_path / "store", sinks=["s"])
    store.append([key.sign(_event())])
    (stored,) = store.read("s")
    env = stored.event
    assert env["seq"] == 1 and env["sig"]["alg"] == "Ed25519" and env["sig"]["kid"] == key.kid
    assert verify(env, key.public) is None
    assert verify(dict(env, seq=99), key.public) is None           # seq is the store's, not signed
    for field, value in (("data", dict(env["data"], quantity=3)), ("gateway", "other-gw"),
                         ("context", {}), ("ts", "2026-11-28T03:00:01.000Z")):
        assert "does not match" in verify(dict(env, **{field: value}), key.public)
    other = DeviceKey.load_or_create(tmp_path / "other")
    assert "not by the given key" in verify(env, other.public)
    forged = copy.deepcopy(env)
    forged["sig"]["kid"] = other.kid
    assert "does not match" in verify(forged, other.public)
    assert verify({k: v for k, v in env.items() if k != "sig"}, key.public) == "no sig field"


def test_public_keys_are_read_as_keys_show_prints_them_or_as_pem(tmp_path):
    key = DeviceKey.load_or_create(tmp_path)
    assert PublicKey.parse(key.public.b64 + "\n") == key.public
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    pem = Ed25519PublicKey.from_public_bytes(key.public.raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert PublicKey.parse(pem) == key.public


class _Driver:
    name = "cnc01"


def test_the_pipeline_signs_every_event_before_the_durable_append(tmp_path):
    cfg = config_mod.parse("""
[gateway]
id = "gw"
[devices.cnc01]
type = "modbus_tcp"
host = "127.0.0.1"
machine = "CNC-01"
[devices.cnc01.tags.parts]
function = "holding"
address = 0
type = "uint32"
[rules.parts]
type = "counter"
device = "cnc01"
tag = "parts"
initial = "zero"
[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1"
telemetry = true
""")
    from gateway.rules.counter import CounterRule
    key = DeviceKey.load_or_create(tmp_path / "state")
    store = Store(tmp_path / "store", sinks={"up": {"business", "telemetry"}})

    async def go() -> None:
        committer = GroupCommitter(store)
        rules = [CounterRule(cfg.rules["parts"], "gw", "CNC-01")]
        pipe = DevicePipeline(cfg, _Driver(), rules, committer, asyncio.Event(), IntakeStats(), signer=key)
        await pipe.load_state()
        for n, value in enumerate((0, 4, 9)):
            assert await pipe.handle([Sample("cnc01", "parts", value, Quality.GOOD, 1_800_000_000.0 + n)])
        await committer.close()

    asyncio.run(go())
    stored = store.read("up", 100)
    kinds = [s.event["kind"] for s in stored]
    assert kinds.count("production") == 2 and kinds.count("telemetry") == 3 and kinds.count("telemetry_tags") == 1
    for s in stored:
        assert verify(s.event, key.public) is None, s.event
    tags = next(s.event for s in stored if s.event["kind"] == "telemetry_tags")
    tele = next(s.event for s in stored if s.event["kind"] == "telemetry")
    assert tags["data"]["tags"] == ["parts"] and tele["ts"] == "2027-01-15T08:00:00.000Z"
    assert tele["data"] == {"format": "values/1", "tagset": tags["data"]["tagset"], "values": [0]}


def test_keys_show_says_there_is_no_key_yet_and_how_it_is_made_then_prints_it(tmp_path, capsys):
    state = tmp_path / "state"
    assert cli.main(["keys", "show", "--state-dir", str(state)]) == 1
    err = capsys.readouterr().err
    assert "no device key yet" in err and "first start" in err and "keys init" in err
    assert not (state / "keys").exists()          # showing never makes one
    assert cli.main(["keys", "init", "--state-dir", str(state)]) == 0
    capsys.readouterr()
    assert cli.main(["keys", "show", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    key = DeviceKey.load(state)
    assert f"public key: {key.public.b64}" in out and f"key id:     {key.kid}" in out
    assert len(base64.b64decode(key.public.b64)) == 32
    assert cli.main(["keys", "show", "--json", "--state-dir", str(state)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["kid"] == key.kid and shown["public_key"] == key.public.b64


def test_verify_counts_good_envelopes_and_names_each_bad_one(tmp_path, capsys):
    key = DeviceKey.load_or_create(tmp_path)
    good = [key.sign(_event(n)) for n in (1, 2, 3)]
    bad = dict(good[1], data={"quantity": 1000})
    path = tmp_path / "envelopes.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in good) + "\n")
    assert cli.main(["verify", str(path), "--key", key.public.b64]) == 0
    assert capsys.readouterr().out.strip() == f"ok: 3 envelope(s) verified with key id {key.kid}"
    path.write_text("\n".join(json.dumps(e) for e in (good[0], bad, good[2])) + "\nnot json\n")
    assert cli.main(["verify", str(path), "--key", key.public.b64]) == 1
    out, err = capsys.readouterr()
    assert f"FAIL line 2 event_id={bad['id']} reason: signature does not match" in out
    assert "FAIL line 4 event_id=- reason: not JSON" in out
    assert "2 of 4 envelope(s) failed verification" in err
