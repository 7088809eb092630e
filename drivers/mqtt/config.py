"""The typed configuration of one MQTT input device: broker connection and topic mappings.

This module owns parsing and validating a `[devices.<name>]` section whose
`type` is `mqtt` into frozen dataclasses, reporting every problem with its
full key path through `ConfigCollector`: broker address, credentials
(`password` or `password_env`), TLS files, session and QoS settings, and the
topics with their field mappings (dotted paths, optional strict types, an
optional timestamp field). It refuses topic filters that could match the same
message and field names used twice, so every message maps through exactly one
topic and every tag name is unique on the device. It does not connect.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from drivers.base import ConfigCollector
from drivers.mqtt.payload import (FIELD_TYPES, TIMESTAMP_UNITS, FieldMapping, path_problem,
                                  split_path)
from drivers.mqtt.topics import filter_problem, overlap

FORMATS: tuple[str, ...] = ("json", "raw")
#: QoS 2 is refused: its exactly-once ends in the client's memory, while QoS 1 with the
#: acknowledgement sent after the batch is stored survives a gateway crash.
QOS_LEVELS: tuple[int, ...] = (0, 1)
DEFAULT_PORT, DEFAULT_TLS_PORT = 1883, 8883

_DEVICE_KEYS = {"type", "host", "port", "client_id", "username", "password", "password_env",
                "tls", "keepalive", "qos", "clean_session", "connect_timeout", "reconnect_min",
                "reconnect_max", "machine", "topics"}
_TLS_KEYS = {"ca_file", "certfile", "keyfile"}
_TOPIC_KEYS = {"topic", "format", "qos", "fields", "timestamp_field", "timestamp_unit"}
_FIELD_KEYS = {"path", "type"}
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces


@dataclass(frozen=True)
class TlsConfig:
    """TLS towards the broker: the CA that signed its certificate, and our own certificate."""

    ca_file: str | None = None      # None: the system's trusted CAs
    certfile: str | None = None     # client certificate (PEM), with keyfile
    keyfile: str | None = None


@dataclass(frozen=True)
class TopicConfig:
    """One subscription and how its messages map to fields (tags)."""

    name: str
    topic: str                       # a topic filter, '+' and '#' allowed
    format: str = "json"             # "json" | "raw"
    qos: int = 1
    fields: tuple[FieldMapping, ...] = ()
    timestamp_field: tuple[str, ...] | None = None
    timestamp_unit: str = "auto"     # "auto" | "s" | "ms" for numeric timestamps


@dataclass(frozen=True)
class MqttDeviceConfig:
    """One MQTT broker connection and the machine topics read through it."""

    host: str
    port: int = DEFAULT_PORT
    client_id: str | None = None     # None: derived from the host name and device name
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsConfig | None = None
    keepalive: int = 60
    qos: int = 1
    clean_session: bool = False
    connect_timeout: float = 5.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    machine: str | None = None
    topics: dict[str, TopicConfig] = field(default_factory=dict)

    @property
    def tag_names(self) -> list[str]:
        """Every field of every topic, in configuration order: the device's tags."""
        return [f.name for t in self.topics.values() for f in t.fields]


def parse_device(section: dict[str, Any], path: str,
                 issues: ConfigCollector) -> MqttDeviceConfig | None:
    """Validate a device section; returns None when any problem was reported."""
    before = len(issues.issues)
    if not isinstance(section, dict):
        issues.add(path, f"must be a table, got {section!r}")
        return None
    issues.unknown_keys(section, path, _DEVICE_KEYS)
    issues.get(section, path, "type", str, choices=("mqtt",))
    host = issues.get(section, path, "host", str, required=True)
    if isinstance(host, str) and not host.strip():
        issues.add(f"{path}.host", "must not be empty")
    tls = _parse_tls(section, path, issues)
    port = issues.get(section, path, "port", int,
                      default=DEFAULT_TLS_PORT if tls else DEFAULT_PORT, minimum=1, maximum=65535)
    client_id = issues.get(section, path, "client_id", str)
    if isinstance(client_id, str) and not _CLIENT_ID.fullmatch(client_id):
        issues.add(f"{path}.client_id", "must be 1..128 printable ASCII characters without spaces")
    username, password = _parse_credentials(section, path, issues)
    keepalive = issues.get(section, path, "keepalive", int, default=60, minimum=5, maximum=65535)
    qos = issues.get(section, path, "qos", int, default=1, choices=QOS_LEVELS)
    clean_session = issues.get(section, path, "clean_session", bool, default=False)
    connect_timeout = _positive(issues, section, path, "connect_timeout", 5.0)
    reconnect_min = _positive(issues, section, path, "reconnect_min", 0.5)
    reconnect_max = _positive(issues, section, path, "reconnect_max", 30.0)
    if reconnect_max < reconnect_min:
        issues.add(f"{path}.reconnect_max",
                   f"must be >= reconnect_min ({reconnect_min:g}), got {reconnect_max:g}")
    machine = issues.get(section, path, "machine", str)
    topics = _parse_topics(section, path, issues, qos if qos in QOS_LEVELS else 1)
    if len(issues.issues) > before:
        return None
    return MqttDeviceConfig(host=host, port=port, client_id=client_id, username=username,
                            password=password, tls=tls, keepalive=keepalive, qos=qos,
                            clean_session=clean_session, connect_timeout=connect_timeout,
                            reconnect_min=reconnect_min, reconnect_max=reconnect_max,
                            machine=machine, topics=topics)


def _positive(issues: ConfigCollector, section: dict[str, Any], path: str, key: str,
              default: float) -> float:
    value = issues.get(section, path, key, float, default=default)
    if not math.isfinite(value) or value <= 0:
        issues.add(f"{path}.{key}", f"must be a number > 0, got {value!r}")
        return default
    return value


def _parse_credentials(section: dict[str, Any], path: str,
                       issues: ConfigCollector) -> tuple[str | None, str | None]:
    username = issues.get(section, path, "username", str)
    password = issues.get(section, path, "password", str)
    env_name = issues.get(section, path, "password_env", str)
    if password is not None and env_name is not None:
        issues.add(f"{path}.password_env", "give either password or password_env, not both")
        return username, None
    if env_name is not None:
        if not _ENV_NAME.fullmatch(env_name):
            issues.add(f"{path}.password_env", f"must be an environment variable name, "
                                               f"got {env_name!r}")
        elif env_name not in os.environ:
            issues.add(f"{path}.password_env", f"environment variable {env_name} is not set")
        else:
            password = os.environ[env_name]
    if password is not None and username is None:
        issues.add(f"{path}.username", "is required when a password is given")
    return username, password


def _parse_tls(section: dict[str, Any], path: str, issues: ConfigCollector) -> TlsConfig | None:
    raw = section.get("tls", False)
    tls_path = f"{path}.tls"
    if isinstance(raw, bool):
        return TlsConfig() if raw else None
    if not isinstance(raw, dict):
        issues.add(tls_path, f"must be true, false or a table, got {raw!r}")
        return None
    issues.unknown_keys(raw, tls_path, _TLS_KEYS)
    files: dict[str, str | None] = {}
    for key in sorted(_TLS_KEYS):
        value = issues.get(raw, tls_path, key, str)
        if isinstance(value, str) and not os.path.isfile(value):
            issues.add(f"{tls_path}.{key}", f"file {value!r} does not exist")
        files[key] = value
    if (files["certfile"] is None) != (files["keyfile"] is None):
        issues.add(tls_path, "certfile and keyfile must be given together")
    return TlsConfig(ca_file=files["ca_file"], certfile=files["certfile"],
                     keyfile=files["keyfile"])


def _parse_topics(section: dict[str, Any], path: str, issues: ConfigCollector,
                  device_qos: int) -> dict[str, TopicConfig]:
    topics_path = f"{path}.topics"
    raw_topics = issues.get(section, path, "topics", dict, required=True)
    if raw_topics is None:
        return {}
    if not raw_topics:
        issues.add(topics_path, "must define at least one topic")
    topics: dict[str, TopicConfig] = {}
    owner: dict[str, str] = {}  # field name -> topic name that declares it
    for name, raw in raw_topics.items():
        topic_path = f"{topics_path}.{name}"
        if not _NAME.fullmatch(name):
            issues.add(topic_path, "topic names may use only letters, digits, '_' and '-'")
            continue
        if not isinstance(raw, dict):
            issues.add(topic_path, f"must be a table, got {raw!r}")
            continue
        topic = _parse_topic(name, raw, topic_path, issues, device_qos)
        if topic is None:
            continue
        for other in topics.values():
            if overlap(topic.topic, other.topic):
                issues.add(f"{topic_path}.topic",
                           f"{topic.topic!r} overlaps {other.topic!r} of topics.{other.name}: "
                           f"one message would be mapped twice")
        for mapping in topic.fields:
            if mapping.name in owner:
                issues.add(f"{topic_path}.fields.{mapping.name}",
                           f"field name already used by topics.{owner[mapping.name]}; "
                           f"field names are the device's tags and must be unique")
            owner.setdefault(mapping.name, name)
        topics[name] = topic
    return topics


def _parse_topic(name: str, raw: dict[str, Any], path: str, issues: ConfigCollector,
                 device_qos: int) -> TopicConfig | None:
    before = len(issues.issues)
    issues.unknown_keys(raw, path, _TOPIC_KEYS)
    topic_filter = issues.get(raw, path, "topic", str, required=True)
    if isinstance(topic_filter, str):
        problem = filter_problem(topic_filter)
        if problem:
            issues.add(f"{path}.topic", f"{problem}, got {topic_filter!r}")
    fmt = issues.get(raw, path, "format", str, default="json", choices=FORMATS)
    qos = issues.get(raw, path, "qos", int, default=device_qos, choices=QOS_LEVELS)
    unit = issues.get(raw, path, "timestamp_unit", str, default="auto", choices=TIMESTAMP_UNITS)
    ts_text = issues.get(raw, path, "timestamp_field", str)
    timestamp_field = None
    if ts_text is not None:
        if fmt == "raw":
            issues.add(f"{path}.timestamp_field", "a raw payload has no fields; "
                                                  "remove timestamp_field or use format = \"json\"")
        elif ts_text == "" or path_problem(ts_text):
            issues.add(f"{path}.timestamp_field",
                       f"{path_problem(ts_text) or 'must not be empty'}, got {ts_text!r}")
        else:
            timestamp_field = split_path(ts_text)
    fields = _parse_fields(raw, path, issues, fmt)
    if len(issues.issues) > before:
        return None
    return TopicConfig(name=name, topic=topic_filter, format=fmt, qos=qos, fields=fields,
                       timestamp_field=timestamp_field, timestamp_unit=unit)


def _parse_fields(raw: dict[str, Any], path: str, issues: ConfigCollector,
                  fmt: str | None) -> tuple[FieldMapping, ...]:
    fields_path = f"{path}.fields"
    raw_fields = issues.get(raw, path, "fields", dict, required=True)
    if raw_fields is None:
        return ()
    if not raw_fields:
        issues.add(fields_path, "must map at least one field")
    if fmt == "raw" and len(raw_fields) > 1:
        issues.add(fields_path, "a raw payload is one value: map exactly one field")
    fields: list[FieldMapping] = []
    for name, spec in raw_fields.items():
        field_path = f"{fields_path}.{name}"
        if not _NAME.fullmatch(name):
            issues.add(field_path, "field names may use only letters, digits, '_' and '-'")
            continue
        short = isinstance(spec, str)  # `parts = "counters.good"`
        if short:
            spec = {"path": spec}
        if not isinstance(spec, dict):
            issues.add(field_path, f"must be a dotted path string or a table with path and "
                                   f"type, got {spec!r}")
            continue
        issues.unknown_keys(spec, field_path, _FIELD_KEYS)
        default_path = "" if fmt == "raw" else None
        text = issues.get(spec, field_path, "path", str, default=default_path,
                          required=fmt != "raw")
        kind = issues.get(spec, field_path, "type", str, choices=FIELD_TYPES)
        if text is None:
            continue
        if fmt == "raw" and text != "":
            issues.add(f"{field_path}.path", "a raw payload is one value: leave path out")
            continue
        problem = path_problem(text)
        if problem:
            issues.add(field_path if short else f"{field_path}.path",
                       f"{problem}, got {text!r}")
            continue
        fields.append(FieldMapping(name=name, path=split_path(text), type=kind))
    return tuple(fields)
