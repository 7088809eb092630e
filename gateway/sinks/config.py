"""Sink sections of the configuration: Odoo and MQTT destinations, label printers and the heartbeat.

It owns the typed models of `[sinks.<name>]` (by `type`; label printers' in
`gateway.sinks.labels.config`) and `[heartbeat]`, and
their validation with key paths, TLS file checks and secrets taken inline, from
the environment or from a file. `gateway.config` calls `parse_sinks` and
`parse_heartbeat` and re-exports the models.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from drivers.base import ConfigCollector
from gateway.events import KINDS
from gateway.sinks.labels.config import LabelSinkConfig, parse_label_sink

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
BUSINESS_KINDS = frozenset(KINDS - {"status"})


class _Gateway(Protocol):
    id: str
    site: str


def table(c: ConfigCollector, raw: dict[str, Any], key: str, path: str = "") -> dict[str, Any]:
    """The sub-table `key` of `raw` (an empty one, and an issue, when it is not a table)."""
    value = c.get(raw, path, key, dict, default={})
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class AlarmCode:
    """How one alarm code reads in Odoo: request title, priority '0'..'3', loss reason."""

    title: str
    priority: str = "2"
    loss: str | None = None


@dataclass(frozen=True)
class OdooSinkConfig:
    name: str
    url: str
    database: str
    login: str
    api_key: str = field(repr=False)
    protocol: str = "auto"
    timeout: float = 10.0
    batch_size: int = 200
    retry_cap: float = 60.0
    rate: float = 20.0             # calls per second (token bucket)
    max_in_flight: int = 2
    loss: str = "Equipment Failure"    # mrp.workcenter.productivity.loss name for downtimes
    alarm_codes: dict[int, AlarmCode] = field(default_factory=dict)
    scrap_location: str = "WH/Stock"   # stock.location full name scrapped parts are taken from
    auto_finish: bool = False          # finish the work order and mark the order done at its quantity
    scrap_mode: str = "components"     # components: the bad part's components, from the order's source
    #                                    location (Odoo's own MO scrap) | validate: the finished product from
    #                                    scrap_location, a wizard answer is a dead letter | do_scrap: the
    #                                    finished product, scrapped even where stock goes negative
    pending_timeout: float = 600.0     # s an event waits for an open work order before it is a dead letter
    quality_test: str | None = None    # qc.test name for inspections (OCA quality_control_oca); None: located
    count_interval: float = 5.0        # s between two qty_producing writes of one work order (0: every batch)
    probe_interval: float = 1.0        # s between probes of a down Odoo while a retry waits (jittered)
    allow_insecure: bool = False       # a prod gateway accepts an http:// url only with this set


@dataclass(frozen=True)
class MqttSinkConfig:
    """An upstream MQTT broker: signed envelopes on `<topic_prefix>/events/<kind>`."""

    name: str
    host: str
    port: int
    tls: bool
    topic_prefix: str
    client_id: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None       # None with mqtts://: the system's CA store
    certfile: str | None = None      # client certificate (with keyfile)
    keyfile: str | None = None
    qos: int = 1
    keepalive: int = 30
    kinds: frozenset[str] = BUSINESS_KINDS
    telemetry: bool = False
    rate: float = 100.0              # messages per second at most (backlog flush)
    batch_size: int = 100
    retry_cap: float = 60.0
    timeout: float = 10.0            # connect and PUBACK wait, seconds
    allow_insecure: bool = False     # a prod gateway accepts an mqtt:// url only with this set

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def classes(self) -> set[str]:
        """The store classes this sink reads."""
        return {"business", "telemetry"} if self.telemetry else {"business"}


@dataclass(frozen=True)
class HeartbeatConfig:
    sink: str                 # the MQTT sink whose connection carries the status and the last will
    interval: float = 10.0    # seconds between retained status messages


SinkConfig = OdooSinkConfig | MqttSinkConfig | LabelSinkConfig


def parse_sinks(c: ConfigCollector, table: dict[str, Any], gateway: _Gateway) -> dict[str, SinkConfig]:
    out: dict[str, SinkConfig] = {}
    for name, section in table.items():
        path = f"sinks.{name}"
        if not isinstance(section, dict):
            c.add(path, "must be a table")
            continue
        if not NAME.fullmatch(name):
            c.add(path, "sink names are letters, digits, '-', '_' or '.'")
        if section.get("type") == "mqtt":
            out[name] = _mqtt_sink(c, name, section, path, gateway)
            continue
        if section.get("type") == "labels":
            out[name] = parse_label_sink(c, name, section, path)
            continue
        c.unknown_keys(section, path, {"type", "url", "database", "login", "api_key", "api_key_env",
                                       "api_key_file", "protocol", "timeout", "batch_size", "retry_cap",
                                       "rate", "max_in_flight", "loss", "alarm_codes", "scrap_location",
                                       "auto_finish", "scrap_mode", "pending_timeout", "quality_test",
                                       "count_interval", "probe_interval",
                                       "allow_insecure"})
        c.get(section, path, "type", str, required=True, choices=("odoo", "mqtt", "labels"))
        url = c.get(section, path, "url", str, required=True, default="")
        if url and not re.match(r"^https?://[^/\s]+", url):
            c.add(f"{path}.url", f"must be an http:// or https:// URL, got {url!r}")
        database = c.get(section, path, "database", str, required=True, default="")
        login = c.get(section, path, "login", str, required=True, default="")
        api_key = _secret(c, section, path)
        protocol = c.get(section, path, "protocol", str, default="auto",
                         choices=("auto", "jsonrpc", "xmlrpc", "json2"))
        timeout = c.get(section, path, "timeout", float, default=10.0, minimum=0.1, maximum=300)
        batch = c.get(section, path, "batch_size", int, default=200, minimum=1, maximum=10000)
        cap = c.get(section, path, "retry_cap", float, default=60.0, minimum=0.001, maximum=3600)
        rate = c.get(section, path, "rate", float, default=20.0, minimum=0.1, maximum=10000)
        in_flight = c.get(section, path, "max_in_flight", int, default=2, minimum=1, maximum=32)
        loss = c.get(section, path, "loss", str, default="Equipment Failure")
        scrap_location = c.get(section, path, "scrap_location", str, default="WH/Stock")
        codes: dict[int, AlarmCode] = {}
        for code, spec in (c.get(section, path, "alarm_codes", dict, default={}) or {}).items():
            cpath = f"{path}.alarm_codes.{code}"
            if not str(code).isdigit() or not 0 < int(code) <= 65535:
                c.add(cpath, f"alarm codes are numbers 1..65535, got {code!r}")
                continue
            if isinstance(spec, str):
                spec = {"title": spec}
            if not isinstance(spec, dict):
                c.add(cpath, "must be a title or a table with title, priority, loss")
                continue
            c.unknown_keys(spec, cpath, {"title", "priority", "loss"})
            codes[int(code)] = AlarmCode(c.get(spec, cpath, "title", str, default=f"Alarm {code}"),
                                         c.get(spec, cpath, "priority", str, default="2",
                                               choices=("0", "1", "2", "3")),
                                         c.get(spec, cpath, "loss", str))
        out[name] = OdooSinkConfig(name, (url or "").rstrip("/"), database, login, api_key or "",
                                   protocol, timeout, batch, cap, rate, in_flight, loss, codes, scrap_location,
                                   c.get(section, path, "auto_finish", bool, default=False),
                                   c.get(section, path, "scrap_mode", str, default="components",
                                         choices=("components", "validate", "do_scrap")),
                                   c.get(section, path, "pending_timeout", float, default=600.0, minimum=0,
                                         maximum=7 * 86400),
                                   c.get(section, path, "quality_test", str) or None,
                                   c.get(section, path, "count_interval", float, default=5.0, minimum=0,
                                         maximum=3600),
                                   c.get(section, path, "probe_interval", float, default=1.0, minimum=0.1,
                                         maximum=60),
                                   bool(c.get(section, path, "allow_insecure", bool, default=False)))
    return out


_MQTT_KEYS = {"type", "url", "client_id", "username", "password", "password_env", "password_file",
              "ca_file", "certfile", "keyfile", "qos", "keepalive", "topic_prefix", "kinds", "telemetry",
              "rate", "batch_size", "retry_cap", "timeout", "allow_insecure"}
_TOPIC_LEVEL = re.compile(r"^[^+#/\x00]+$")


def _mqtt_sink(c: ConfigCollector, name: str, section: dict[str, Any], path: str,
               gateway: _Gateway) -> MqttSinkConfig:
    c.unknown_keys(section, path, _MQTT_KEYS)
    url = c.get(section, path, "url", str, required=True, default="") or ""
    m = re.match(r"^(mqtts?)://(\[[0-9A-Fa-f:.]+\]|[^:/\s\[\]]+)(?::(\d{1,5}))?/?$", url)
    tls, host, port = False, "", 1883
    if url and not m:
        c.add(f"{path}.url", f"must be mqtt://host[:port] or mqtts://host[:port], got {url!r}")
    elif m:
        tls, host = m.group(1) == "mqtts", m.group(2).strip("[]")
        port = int(m.group(3)) if m.group(3) else (8883 if tls else 1883)
        if not 0 < port < 65536:
            c.add(f"{path}.url", f"port must be 1..65535, got {port}")
    client_id = c.get(section, path, "client_id", str, default=f"linebridge-{gateway.id}-{name}")
    if client_id is not None and not 0 < len(client_id.encode("utf-8")) <= 65535:
        c.add(f"{path}.client_id", "must not be empty")
    username = c.get(section, path, "username", str)
    password = None
    if any(k in section for k in ("password", "password_env", "password_file")):
        password = _secret(c, section, path, "password")
        if username is None:
            c.add(f"{path}.username", "is required when a password is set")
    ca_file = _readable(c, section, path, "ca_file")
    certfile = _readable(c, section, path, "certfile")
    keyfile = _readable(c, section, path, "keyfile")
    if ("certfile" in section) != ("keyfile" in section):
        missing = "keyfile" if "certfile" in section else "certfile"
        c.add(f"{path}.{missing}", "a client certificate needs both certfile and keyfile")
    if not tls and m:
        for key in ("ca_file", "certfile", "keyfile"):
            if key in section:
                c.add(f"{path}.{key}", f"TLS files need an mqtts:// url, got {url!r}")
    elif tls:
        _check_tls(c, path, ca_file, certfile, keyfile)
    default_prefix = f"linebridge/{gateway.site}/{gateway.id}"
    prefix = c.get(section, path, "topic_prefix", str, default=default_prefix) or default_prefix
    if not all(_TOPIC_LEVEL.match(level) for level in prefix.split("/")):
        c.add(f"{path}.topic_prefix", "topic levels must be non-empty and free of '+', '#' and NUL; "
                                      f"no leading or trailing '/', got {prefix!r}")
    kinds_raw = c.get(section, path, "kinds", list, default=sorted(BUSINESS_KINDS))
    kinds: set[str] = set()
    for i, kind in enumerate(kinds_raw or []):
        if kind not in KINDS:
            c.add(f"{path}.kinds[{i}]", f"unknown event kind {kind!r} (known: {', '.join(sorted(KINDS))})")
        else:
            kinds.add(kind)
    return MqttSinkConfig(
        name=name, host=host, port=port, tls=tls, topic_prefix=prefix, client_id=client_id or name,
        username=username, password=password, ca_file=ca_file, certfile=certfile, keyfile=keyfile,
        qos=c.get(section, path, "qos", int, default=1, choices=(1, 2)),
        keepalive=c.get(section, path, "keepalive", int, default=30, minimum=5, maximum=3600),
        kinds=frozenset(kinds),
        telemetry=c.get(section, path, "telemetry", bool, default=False),
        rate=c.get(section, path, "rate", float, default=100.0, minimum=0.1, maximum=100000),
        batch_size=c.get(section, path, "batch_size", int, default=100, minimum=1, maximum=10000),
        retry_cap=c.get(section, path, "retry_cap", float, default=60.0, minimum=0.001, maximum=3600),
        timeout=c.get(section, path, "timeout", float, default=10.0, minimum=0.5, maximum=300),
        allow_insecure=bool(c.get(section, path, "allow_insecure", bool, default=False)))


def _readable(c: ConfigCollector, section: dict[str, Any], path: str, key: str) -> str | None:
    value = c.get(section, path, key, str)
    if value is None:
        return None
    p = Path(value)
    if not p.exists():
        c.add(f"{path}.{key}", f"no such file {value!r}")
    elif not p.is_file():
        c.add(f"{path}.{key}", f"{value!r} is not a file")
    elif not os.access(p, os.R_OK):
        c.add(f"{path}.{key}", f"{value!r} is not readable by this user")
    else:
        return value
    return None


def _check_tls(c: ConfigCollector, path: str, ca_file: str | None, certfile: str | None,
               keyfile: str | None) -> None:
    """Load the TLS files as the sink will, so a wrong file is a config error, not a retry loop."""
    import ssl
    if ca_file:
        try:
            ssl.create_default_context(cafile=ca_file)
        except ssl.SSLError as exc:
            c.add(f"{path}.ca_file", f"{ca_file!r} holds no PEM CA certificate ({exc.reason or exc})")
    if certfile and keyfile:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            ctx.load_cert_chain(certfile, keyfile)
        except ssl.SSLError as exc:
            reason = exc.reason or str(exc)
            what = ("the key does not belong to the certificate" if "KEY_VALUES_MISMATCH" in str(exc)
                    else "not a PEM certificate and key")
            c.add(f"{path}.certfile", f"{certfile!r} with keyfile {keyfile!r}: {what} ({reason})")


def parse_heartbeat(c: ConfigCollector, raw: dict[str, Any], sinks: dict[str, SinkConfig]) -> HeartbeatConfig | None:
    if "heartbeat" not in raw:
        return None
    h = table(c, raw, "heartbeat")
    c.unknown_keys(h, "heartbeat", {"sink", "interval"})
    sink = c.get(h, "heartbeat", "sink", str, required=True)
    interval = c.get(h, "heartbeat", "interval", float, default=10.0, minimum=0.2, maximum=3600)
    if sink is not None and sink in sinks and not isinstance(sinks[sink], MqttSinkConfig):
        c.add("heartbeat.sink", f"sink {sink!r} is not an MQTT sink")
    elif sink is not None and sink not in sinks:
        mqtt = [n for n, s in sinks.items() if isinstance(s, MqttSinkConfig)]
        c.add("heartbeat.sink", f"no MQTT sink {sink!r} under [sinks] (MQTT sinks: {', '.join(mqtt) or 'none'})")
    return HeartbeatConfig(sink or "", interval or 10.0)


def _secret(c: ConfigCollector, section: dict[str, Any], path: str, name: str = "api_key") -> str | None:
    given = [k for k in (name, f"{name}_env", f"{name}_file") if k in section]
    if len(given) != 1:
        c.add(f"{path}.{name}", f"set exactly one of {name}, {name}_env, {name}_file")
        return None
    key = given[0]
    value = c.get(section, path, key, str)
    if value is None:
        return None
    if key.endswith("_env"):
        if value not in os.environ:
            c.add(f"{path}.{key}", f"environment variable {value!r} is not set")
            return None
        return os.environ[value]
    if key.endswith("_file"):
        try:
            return Path(value).read_text(encoding="utf-8").strip()
        except OSError as exc:
            c.add(f"{path}.{key}", f"cannot read {value!r}: {exc.strerror or exc}")
            return None
    return value
