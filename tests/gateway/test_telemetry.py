"""Compact telemetry (values/1): one record per poll, values in tag order, tag sets named once, all verifiable."""
from __future__ import annotations

import json

from drivers.base import Quality, Sample
from gateway import cli
from gateway.signing import DeviceKey
from gateway.telemetry import Encoder, decode, tagset_id


def _s(tag: str, value, ts: float = 1_800_000_000.0, quality: Quality = Quality.GOOD) -> Sample:
    return Sample("press1", tag, value, quality, ts)


def test_a_poll_is_one_record_with_the_values_in_configured_tag_order():
    enc = Encoder("gw", "press1", ["a", "b", "c"])
    tags, rec = enc.records([_s("c", 3, 10.0), _s("a", 1.5, 10.2), _s("b", 9, 9.9, Quality.BAD_COMM)])
    assert tags["kind"] == "telemetry_tags" and tags["data"]["tags"] == ["a", "b", "c"]
    assert tags["data"]["tagset"] == tagset_id(["a", "b", "c"]) == rec["data"]["tagset"]
    assert rec["kind"] == "telemetry" and rec["data"]["values"] == [1.5, None, 3]
    assert rec["ts"] == "1970-01-01T00:00:10.200Z"       # one timestamp: the newest good read
    assert decode(rec, {tags["data"]["tagset"]: tags["data"]["tags"]}) == [("a", 1.5), ("c", 3)]
    assert decode(rec, {}) is None                        # the tag set is not known yet
    (again,) = enc.records([_s("a", 2, 11.0)])            # the tag set is not repeated every poll
    assert again["data"]["values"] == [2, None, None]


def test_a_new_tag_publishes_a_new_tag_set_and_old_values_keep_theirs():
    enc = Encoder("gw", "press1", ["a"])
    first = enc.records([_s("a", 1, 1.0)])
    second = enc.records([_s("a", 2, 2.0), _s("z", 7, 2.0)])
    assert [r["kind"] for r in first] == [r["kind"] for r in second] == ["telemetry_tags", "telemetry"]
    assert second[0]["data"]["tags"] == ["a", "z"] and second[1]["data"]["values"] == [2, 7]
    assert first[1]["data"]["tagset"] != second[1]["data"]["tagset"]


def test_the_tag_set_is_repeated_every_ten_minutes_of_source_time():
    enc = Encoder("gw", "press1", ["a"])
    assert len(enc.records([_s("a", 1, 0.0)])) == 2
    assert len(enc.records([_s("a", 1, 599.0)])) == 1
    assert len(enc.records([_s("a", 1, 600.0)])) == 2


def test_a_burst_with_a_tag_twice_keeps_every_sample():
    enc = Encoder("gw", "press1", ["a"])
    (rec,) = enc.records([_s("a", 1, 1.0), _s("a", 2, 2.0)])
    assert [s["value"] for s in rec["data"]["samples"]] == [1, 2]
    assert decode(rec, {}) == [("a", 1), ("a", 2)]


def test_compact_records_are_smaller_than_13_bytes_per_value(tmp_path):
    enc = Encoder("gw", "press1", [f"r{i}" for i in range(100)])
    enc.records([_s(f"r{i}", i) for i in range(100)])
    (rec,) = enc.records([_s(f"r{i}", 40000 + i, 2.0) for i in range(100)])
    key = DeviceKey.load_or_create(tmp_path / "k")
    wire = json.dumps(key.sign(rec), separators=(",", ":")).encode()
    assert len(wire) / 100 <= 13, len(wire)


def test_verify_decodes_signed_telemetry_by_tag_name(tmp_path, capsys):
    key = DeviceKey.load_or_create(tmp_path / "k")
    enc = Encoder("gw", "press1", ["speed", "temp"])
    lines = [json.dumps(key.sign(r)) for r in enc.records([_s("speed", 1200, 5.0), _s("temp", 61.5, 5.0)])]
    forged = json.loads(lines[-1])
    forged["data"]["values"][0] = 99
    path = tmp_path / "env.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert cli.main(["verify", str(path), "--key", key.public.b64, "--decode"]) == 0
    out = capsys.readouterr().out
    assert 'speed=1200 temp=61.5' in out and "ok: 2 envelope(s)" in out
    path.write_text("\n".join(lines[:-1] + [json.dumps(forged)]) + "\n")
    assert cli.main(["verify", str(path), "--key", key.public.b64, "--decode"]) == 1
    assert "speed=99" not in capsys.readouterr().out
