"""Validation of an mqtt device section: every problem with its full key path."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from drivers.base import ConfigCollector
from drivers.mqtt import FieldMapping, MqttDeviceConfig, MqttDriver, TlsConfig, TopicConfig

HERE = Path(__file__).resolve().parents[3] / "drivers" / "mqtt"


def section(**overrides):
    base = {"type": "mqtt", "host": "127.0.0.1",
            "topics": {"state": {"topic": "plant/cnc01/state",
                                 "fields": {"parts": "counters.good"}}}}
    base.update(overrides)
    return base


def parse(sec):
    issues = ConfigCollector()
    config = MqttDriver.parse_config(sec, "devices.cnc01", issues)
    return config, [(i.path, i.message) for i in issues.issues]


def topics(**named):
    return {"topics": named}


def test_valid_section_gives_safe_defaults():
    config, issues = parse(section())
    assert issues == []
    assert config == MqttDeviceConfig(
        host="127.0.0.1", port=1883, client_id=None, username=None, password=None, tls=None,
        keepalive=60, qos=1, clean_session=False, connect_timeout=5.0, reconnect_min=0.5,
        reconnect_max=30.0, machine=None,
        topics={"state": TopicConfig(name="state", topic="plant/cnc01/state", format="json",
                                     qos=1, fields=(FieldMapping("parts", ("counters", "good")),),
                                     timestamp_field=None, timestamp_unit="auto")})
    assert config.tag_names == ["parts"]


def test_the_readme_example_parses(tmp_path, monkeypatch):
    text = (HERE / "README.md").read_text()
    example = re.search(r"## Complete example\n\n```toml\n(.*?)```", text, re.S).group(1)
    for name in ("plant-ca.pem", "gw01.pem", "gw01.key"):
        (tmp_path / name).write_text("pem")
    example = example.replace("/etc/linebridge/tls/", f"{tmp_path}/")
    monkeypatch.setenv("LINEBRIDGE_MQTT_PASSWORD", "from-the-environment")
    config, issues = parse(tomllib.loads(example)["devices"]["cnc01"])
    assert issues == []
    assert config.password == "from-the-environment" and config.username == "linebridge"
    assert config.tls == TlsConfig(ca_file=f"{tmp_path}/plant-ca.pem",
                                   certfile=f"{tmp_path}/gw01.pem", keyfile=f"{tmp_path}/gw01.key")
    assert config.tag_names == ["parts", "scrap", "spindle_load", "running", "program",
                                "alarm_code", "weight"]
    assert config.topics["weight"].qos == 0 and config.topics["state"].qos == 1
    assert config.topics["weight"].fields == (FieldMapping("weight", (), "float"),)
    assert config.topics["alarms"].timestamp_field == ("time",)
    assert "from-the-environment" not in repr(config)  # secrets stay out of logs


def test_sample_toml_parses():
    raw = tomllib.loads((HERE / "sample.toml").read_text())
    for name, sec in raw["devices"].items():
        config, issues = parse(sec)
        assert issues == [], name
        assert config.port == 1883 and config.tls is None


def test_every_problem_is_reported_with_its_key_path():
    sec = section(port=0, qos=2, keepalive=1, clean_session="no", color="red",
                  reconnect_min=5.0, reconnect_max=1.0,
                  topics={"state": {"topic": "plant/#/state", "format": "xml", "fields": {
                      "parts": {"path": "counters..good", "type": "integer"},
                      "bad name": "x"}}})
    config, issues = parse(sec)
    assert config is None
    assert issues == [
        ("devices.cnc01.color", "unknown key (allowed: clean_session, client_id, "
                                "connect_timeout, host, keepalive, machine, password, "
                                "password_env, port, qos, reconnect_max, reconnect_min, tls, "
                                "topics, type, username)"),
        ("devices.cnc01.port", "must be 1..65535, got 0"),
        ("devices.cnc01.keepalive", "must be 5..65535, got 1"),
        ("devices.cnc01.qos", "must be one of 0, 1, got 2"),
        ("devices.cnc01.clean_session", "must be true or false, got 'no'"),
        ("devices.cnc01.reconnect_max", "must be >= reconnect_min (5), got 1"),
        ("devices.cnc01.topics.state.topic",
         "'#' must be a whole level and the last one (as in 'plant/#'), got 'plant/#/state'"),
        ("devices.cnc01.topics.state.format", "must be one of json, raw, got 'xml'"),
        ("devices.cnc01.topics.state.fields.parts.type",
         "must be one of int, float, bool, str, got 'integer'"),
        ("devices.cnc01.topics.state.fields.parts.path",
         "must be dot-separated keys or list indexes without empty parts "
         "(as in 'counters.good'), got 'counters..good'"),
        ("devices.cnc01.topics.state.fields.bad name",
         "field names may use only letters, digits, '_' and '-'"),
    ]


def test_overlapping_topics_are_refused_so_no_message_maps_twice():
    _, issues = parse(section(**topics(
        state={"topic": "plant/+/state", "fields": {"parts": "parts"}},
        everything={"topic": "plant/cnc01/#", "fields": {"other": "x"}})))
    assert issues == [("devices.cnc01.topics.everything.topic",
                       "'plant/cnc01/#' overlaps 'plant/+/state' of topics.state: "
                       "one message would be mapped twice")]


def test_a_field_name_is_one_tag_of_the_device():
    _, issues = parse(section(**topics(
        a={"topic": "plant/a", "fields": {"parts": "parts"}},
        b={"topic": "plant/b", "fields": {"parts": "count"}})))
    assert issues == [("devices.cnc01.topics.b.fields.parts",
                       "field name already used by topics.a; field names are the device's "
                       "tags and must be unique")]


def test_raw_topics_map_exactly_one_field_without_a_path():
    _, issues = parse(section(**topics(
        two={"topic": "s/1", "format": "raw", "fields": {"a": "", "b": ""}},
        pathed={"topic": "s/2", "format": "raw", "fields": {"c": {"path": "x"}}},
        stamped={"topic": "s/3", "format": "raw", "timestamp_field": "ts",
                 "fields": {"d": {"type": "int"}}})))
    assert issues == [
        ("devices.cnc01.topics.two.fields", "a raw payload is one value: map exactly one field"),
        ("devices.cnc01.topics.pathed.fields.c.path",
         "a raw payload is one value: leave path out"),
        ("devices.cnc01.topics.stamped.timestamp_field",
         "a raw payload has no fields; remove timestamp_field or use format = \"json\""),
    ]


def test_json_fields_need_a_path_and_topics_need_fields():
    _, issues = parse(section(**topics(
        nopath={"topic": "s/1", "fields": {"a": {"type": "int"}}},
        nofields={"topic": "s/2", "fields": {}},
        missing={"topic": "s/3"})))
    assert issues == [
        ("devices.cnc01.topics.nopath.fields.a.path", "is required"),
        ("devices.cnc01.topics.nofields.fields", "must map at least one field"),
        ("devices.cnc01.topics.missing.fields", "is required"),
    ]


def test_credentials_must_be_complete_and_the_environment_variable_set(monkeypatch):
    monkeypatch.delenv("LB_NOT_SET", raising=False)
    _, issues = parse(section(password="x"))
    assert issues == [("devices.cnc01.username", "is required when a password is given")]
    _, issues = parse(section(username="u", password="x", password_env="LB_NOT_SET"))
    assert issues == [("devices.cnc01.password_env",
                       "give either password or password_env, not both")]
    _, issues = parse(section(username="u", password_env="LB_NOT_SET"))
    assert issues == [("devices.cnc01.password_env", "environment variable LB_NOT_SET is not set")]
    _, issues = parse(section(username="u", password_env="1-bad"))
    assert issues == [("devices.cnc01.password_env",
                       "must be an environment variable name, got '1-bad'")]


def test_tls_files_must_exist_and_the_port_defaults_to_8883(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    config, issues = parse(section(tls={"ca_file": str(ca)}))
    assert issues == [] and config.port == 8883 and config.tls == TlsConfig(ca_file=str(ca))
    config, issues = parse(section(tls=True))
    assert issues == [] and config.tls == TlsConfig() and config.port == 8883
    _, issues = parse(section(tls={"ca_file": str(tmp_path / "nope.pem"),
                                   "certfile": str(ca)}))
    assert issues == [
        ("devices.cnc01.tls.ca_file", f"file '{tmp_path / 'nope.pem'}' does not exist"),
        ("devices.cnc01.tls", "certfile and keyfile must be given together"),
    ]
    _, issues = parse(section(tls="yes"))
    assert issues == [("devices.cnc01.tls", "must be true, false or a table, got 'yes'")]


def test_client_id_and_timestamp_settings_are_checked():
    _, issues = parse(section(client_id="has space", topics={"state": {
        "topic": "t", "timestamp_field": "meta..ts", "timestamp_unit": "us",
        "fields": {"a": "a"}}}))
    assert issues == [
        ("devices.cnc01.client_id", "must be 1..128 printable ASCII characters without spaces"),
        ("devices.cnc01.topics.state.timestamp_unit", "must be one of auto, s, ms, got 'us'"),
        ("devices.cnc01.topics.state.timestamp_field",
         "must be dot-separated keys or list indexes without empty parts "
         "(as in 'counters.good'), got 'meta..ts'"),
    ]


def test_not_a_table_and_no_topics():
    _, issues = parse("mqtt://broker")
    assert issues == [("devices.cnc01", "must be a table, got 'mqtt://broker'")]
    sec = section()
    del sec["topics"]
    _, issues = parse(sec)
    assert issues == [("devices.cnc01.topics", "is required")]
    _, issues = parse(section(topics={}))
    assert issues == [("devices.cnc01.topics", "must define at least one topic")]


def test_the_default_client_id_is_stable_and_names_the_device():
    config, _ = parse(section())
    first, second = MqttDriver("cnc01", config), MqttDriver("cnc01", config)
    assert first.client_id == second.client_id
    assert first.client_id.startswith("linebridge-") and first.client_id.endswith("-cnc01")
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", first.client_id)
    config, _ = parse(section(client_id="gw01-cnc01"))
    assert MqttDriver("cnc01", config).client_id == "gw01-cnc01"
