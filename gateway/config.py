"""The typed, validated configuration: one TOML file, checked whole before anything starts.

Each section has its own small model (gateway, store, devices, rules, machines,
sinks). Validation collects every problem with its key path and reports them
together as `file: key.path: reason`; the same validator serves `check-config`,
`run` and (later) the web UI. Device sections are validated by their driver
class, found through the driver registry. Defaults are safe for a plant:
timeouts on, writes to devices off.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.base import ConfigCollector, Driver
from gateway.context import ShiftCalendar, parse_shifts
from gateway.errors import ConfigError
from gateway.events import KINDS
from gateway.registry import driver_class, driver_types
from gateway.rules import config as rule_config
from gateway.rules.config import (EdgeRuleConfig, RuleConfig, ScanRuleConfig, ThresholdRuleConfig,
                                  WeightRuleConfig)

__all__ = ["EdgeRuleConfig", "ScanRuleConfig", "ThresholdRuleConfig", "WeightRuleConfig"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: what an MQTT sink publishes by default: every business kind (the gateway's status
#: goes to the heartbeat's own topic)
BUSINESS_KINDS = frozenset(KINDS - {"status"})


@dataclass(frozen=True)
class GatewayConfig:
    id: str
    site: str


@dataclass(frozen=True)
class StoreConfig:
    map_size_mb: int = 64
    max_map_size_mb: int = 1024
    dedupe_ttl_hours: float = 168.0
    journal_keep: int = 1_000_000
    business_max_events: int = 0      # 0: no cap but the map's maximum; never evicted
    business_max_mb: int = 0
    telemetry_max_events: int = 1_000_000   # at the cap the oldest telemetry is evicted, counted
    telemetry_max_mb: int = 256


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    type: str
    driver: type[Driver]
    config: Any
    machine: str | None


@dataclass(frozen=True)
class CounterRuleConfig:
    name: str
    device: str
    tag: str
    kind: str                 # production | scrap
    width: int                # 16 | 32 bits: where the counter rolls over
    initial: str              # baseline | zero: what the first reading ever means
    rollover_window: int      # a drop from within this of the top to below it is a rollover


@dataclass(frozen=True)
class AlarmRuleConfig:
    name: str
    device: str
    tag: str
    downtime: bool = True     # also downtime_start / downtime_end on the work center
    debounce: float = 0.0     # seconds a change must hold before it counts (0 = at once)
    min_duration: float = 0.0  # a downtime shorter than this is dropped (start and end)
    repeat_suppress: float = 0.0  # no new alarm for the same code re-raised this soon after it cleared


@dataclass(frozen=True)
class MachineConfig:
    name: str
    work_center: str | None = None   # mrp.workcenter code
    equipment: str | None = None     # maintenance.equipment serial number
    product: str | None = None       # default product (internal reference) made on this machine


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
    scrap_mode: str = "validate"       # validate: a wizard answer is a dead letter | do_scrap: scrap anyway
    pending_timeout: float = 600.0     # s an event waits for an open work order before it is a dead letter


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


SinkConfig = OdooSinkConfig | MqttSinkConfig


@dataclass(frozen=True)
class Config:
    source: str
    gateway: GatewayConfig
    store: StoreConfig
    devices: dict[str, DeviceSpec]
    rules: dict[str, CounterRuleConfig | AlarmRuleConfig | RuleConfig]
    machines: dict[str, MachineConfig]
    sinks: dict[str, SinkConfig]
    heartbeat: HeartbeatConfig | None = None
    shifts: ShiftCalendar | None = None

    def sinks_of(self, kind: type) -> dict[str, Any]:
        return {n: s for n, s in self.sinks.items() if isinstance(s, kind)}

    @property
    def wants_telemetry(self) -> bool:
        return any(isinstance(s, MqttSinkConfig) and s.telemetry for s in self.sinks.values())

    def summary(self) -> str:
        tags = sum(len(tag_names(d.config)) for d in self.devices.values())
        return (f"{self.source}: ok: gateway {self.gateway.id}, {len(self.devices)} device(s), "
                f"{tags} tag(s), {len(self.rules)} rule(s), {len(self.machines)} machine(s), "
                f"{len(self.sinks)} sink(s)")


_TOP = {"gateway", "store", "devices", "rules", "machines", "sinks", "heartbeat", "shifts"}


def load(path: Path | str) -> Config:
    """Read and validate `path`; raise ConfigError listing every problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror or exc}"]) from exc
    return parse(text, source=p.name)


def parse(text: str, source: str = "<config>") -> Config:
    """Validate TOML text; `source` names the file in error messages."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: not valid TOML: {exc}"]) from exc
    return validate(raw, source)


def _table(c: ConfigCollector, raw: dict[str, Any], key: str, path: str = "") -> dict[str, Any]:
    value = c.get(raw, path, key, dict, default={})
    return value if isinstance(value, dict) else {}


def validate(raw: dict[str, Any], source: str = "<config>") -> Config:
    c = ConfigCollector()
    c.unknown_keys(raw, "", _TOP)

    g = _table(c, raw, "gateway")
    c.unknown_keys(g, "gateway", {"id", "site"})
    gid = c.get(g, "gateway", "id", str, required=True, default="gateway")
    site = c.get(g, "gateway", "site", str, default="default")
    for key, val in (("id", gid), ("site", site)):
        if isinstance(val, str) and not _NAME.match(val):
            c.add(f"gateway.{key}", f"must be letters, digits, '-', '_' or '.', got {val!r}")
    gateway = GatewayConfig(gid, site)

    store = _store(c, _table(c, raw, "store"))

    device_table = _table(c, raw, "devices")
    devices = _devices(c, device_table)
    # rules refer to tags as each driver names them, or as written when the device has errors
    declared = {name: set((sec.get("tags") or {}) if isinstance(sec, dict) else ())
                for name, sec in device_table.items()}
    declared.update({name: tag_names(spec.config) for name, spec in devices.items()})
    machines = _machines(c, _table(c, raw, "machines"))
    rules = _rules(c, _table(c, raw, "rules"), devices, declared)
    sinks = _sinks(c, _table(c, raw, "sinks"), gateway)
    heartbeat = _heartbeat(c, raw, sinks)
    shifts = parse_shifts(c, raw.get("shifts"))

    for name, dev in devices.items():
        if dev.machine and machines and dev.machine not in machines:
            c.add(f"devices.{name}.machine", f"machine {dev.machine!r} is not defined under [machines]")
    if not sinks:
        c.add("sinks", "at least one sink is required (events need somewhere to go)")

    if c.issues:
        raise ConfigError([f"{source}: {issue}" for issue in c.issues])
    return Config(source, gateway, store, devices, rules, machines, sinks, heartbeat, shifts)


def tag_names(driver_config: Any) -> set[str]:
    """A driver config's tags: its `tag_names` if it has them, else the keys of its `tags`."""
    names = getattr(driver_config, "tag_names", None)
    return set(names if names is not None else (getattr(driver_config, "tags", None) or {}))


def _store(c: ConfigCollector, s: dict[str, Any]) -> StoreConfig:
    c.unknown_keys(s, "store", {"map_size_mb", "max_map_size_mb", "dedupe_ttl_hours", "journal_keep",
                                "business", "telemetry"})
    d = StoreConfig()
    map_mb = c.get(s, "store", "map_size_mb", int, default=d.map_size_mb, minimum=1, maximum=1024 * 1024)
    max_mb = c.get(s, "store", "max_map_size_mb", int, default=max(d.max_map_size_mb, map_mb),
                   minimum=1, maximum=1024 * 1024)
    if max_mb < map_mb:
        c.add("store.max_map_size_mb", f"must be at least map_size_mb ({map_mb}), got {max_mb}")
    caps = {}
    for cls in ("business", "telemetry"):
        t = _table(c, s, cls, "store")
        path = f"store.{cls}"
        c.unknown_keys(t, path, {"max_events", "max_mb"})
        caps[cls] = (c.get(t, path, "max_events", int, default=getattr(d, f"{cls}_max_events"), minimum=0),
                     c.get(t, path, "max_mb", int, default=getattr(d, f"{cls}_max_mb"), minimum=0))
    return StoreConfig(
        map_size_mb=map_mb, max_map_size_mb=max_mb,
        dedupe_ttl_hours=c.get(s, "store", "dedupe_ttl_hours", float, default=d.dedupe_ttl_hours,
                               minimum=0.01, maximum=24 * 3650),
        journal_keep=c.get(s, "store", "journal_keep", int, default=d.journal_keep, minimum=1000),
        business_max_events=caps["business"][0], business_max_mb=caps["business"][1],
        telemetry_max_events=caps["telemetry"][0], telemetry_max_mb=caps["telemetry"][1])


def _devices(c: ConfigCollector, table: dict[str, Any]) -> dict[str, DeviceSpec]:
    out: dict[str, DeviceSpec] = {}
    for name, section in table.items():
        path = f"devices.{name}"
        if not _NAME.match(name):
            c.add(path, "device names are letters, digits, '-', '_' or '.'")
        if not isinstance(section, dict):
            c.add(path, "must be a table")
            continue
        type_name = c.get(section, path, "type", str, required=True)
        if type_name is None:
            continue
        cls = driver_class(type_name)
        if cls is None:
            c.add(f"{path}.type", f"unknown driver {type_name!r} (known: {', '.join(sorted(driver_types()))})")
            continue
        before = len(c.issues)
        cfg = cls.parse_config(section, path, c)
        if len(c.issues) == before:
            out[name] = DeviceSpec(name, type_name, cls, cfg, getattr(cfg, "machine", None))
    return out


def _machines(c: ConfigCollector, table: dict[str, Any]) -> dict[str, MachineConfig]:
    out: dict[str, MachineConfig] = {}
    for name, section in table.items():
        path = f"machines.{name}"
        if not isinstance(section, dict):
            c.add(path, "must be a table")
            continue
        c.unknown_keys(section, path, {"work_center", "equipment", "product"})
        out[name] = MachineConfig(name, c.get(section, path, "work_center", str),
                                  c.get(section, path, "equipment", str),
                                  c.get(section, path, "product", str))
    return out


_RULE_KEYS = {"counter": {"type", "device", "tag", "kind", "width", "initial", "rollover_window"},
              "alarm": {"type", "device", "tag", "downtime"} | rule_config.TIMING_KEYS,
              **rule_config.KEYS}


def _rules(c: ConfigCollector, table: dict[str, Any], devices: dict[str, DeviceSpec],
           declared: dict[str, set[str]]) -> dict[str, CounterRuleConfig | AlarmRuleConfig | RuleConfig]:
    """Rules refer to devices and tags as written, even when a device has its own errors."""
    out: dict[str, CounterRuleConfig | AlarmRuleConfig | RuleConfig] = {}
    for name, section in table.items():
        path = f"rules.{name}"
        if not isinstance(section, dict):
            c.add(path, "must be a table")
            continue
        rtype = c.get(section, path, "type", str, required=True, choices=tuple(_RULE_KEYS))
        c.unknown_keys(section, path, _RULE_KEYS.get(rtype or "", {"type"}))
        device = c.get(section, path, "device", str, required=True)
        tag = c.get(section, path, "tag", str, required=True)
        if device is not None and device not in declared:
            c.add(f"{path}.device", f"no device {device!r} is defined under [devices]")
        elif device is not None and tag is not None:
            if tag not in declared[device]:
                c.add(f"{path}.tag", f"device {device!r} has no tag {tag!r}")
            elif device in devices and devices[device].machine is None:
                c.add(f"devices.{device}.machine", f"required by rule {name!r}: events need a machine")
        if rtype == "alarm":
            out[name] = AlarmRuleConfig(name, device or "", tag or "",
                                        c.get(section, path, "downtime", bool, default=True),
                                        **rule_config.timing(c, section, path))
            continue
        if rtype in rule_config.KEYS:
            parsed = rule_config.parse(c, rtype, name, section, path, device or "", tag or "")
            if parsed is not None:
                out[name] = parsed
            continue
        kind = c.get(section, path, "kind", str, default="production", choices=("production", "scrap"))
        width = c.get(section, path, "width", int, default=32, choices=(16, 32))
        initial = c.get(section, path, "initial", str, default="baseline", choices=("baseline", "zero"))
        modulus = 1 << (width or 32)
        window = c.get(section, path, "rollover_window", int, default=modulus // 4,
                       minimum=1, maximum=modulus - 1)
        if rtype is not None:
            out[name] = CounterRuleConfig(name, device or "", tag or "", kind or "production",
                                          width or 32, initial or "baseline", window or 1)
    return out


def _sinks(c: ConfigCollector, table: dict[str, Any], gateway: GatewayConfig) -> dict[str, SinkConfig]:
    out: dict[str, SinkConfig] = {}
    for name, section in table.items():
        path = f"sinks.{name}"
        if not isinstance(section, dict):
            c.add(path, "must be a table")
            continue
        if not _NAME.match(name):
            c.add(path, "sink names are letters, digits, '-', '_' or '.'")
        if section.get("type") == "mqtt":
            out[name] = _mqtt_sink(c, name, section, path, gateway)
            continue
        c.unknown_keys(section, path, {"type", "url", "database", "login", "api_key", "api_key_env",
                                       "api_key_file", "protocol", "timeout", "batch_size", "retry_cap",
                                       "rate", "max_in_flight", "loss", "alarm_codes", "scrap_location",
                                       "auto_finish", "scrap_mode", "pending_timeout"})
        c.get(section, path, "type", str, required=True, choices=("odoo", "mqtt"))
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
        cap = c.get(section, path, "retry_cap", float, default=60.0, minimum=1, maximum=3600)
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
                                   c.get(section, path, "scrap_mode", str, default="validate",
                                         choices=("validate", "do_scrap")),
                                   c.get(section, path, "pending_timeout", float, default=600.0, minimum=0,
                                         maximum=7 * 86400))
    return out


_MQTT_KEYS = {"type", "url", "client_id", "username", "password", "password_env", "password_file",
              "ca_file", "certfile", "keyfile", "qos", "keepalive", "topic_prefix", "kinds", "telemetry",
              "rate", "batch_size", "retry_cap", "timeout"}
_TOPIC_LEVEL = re.compile(r"^[^+#/\x00]+$")


def _mqtt_sink(c: ConfigCollector, name: str, section: dict[str, Any], path: str,
               gateway: GatewayConfig) -> MqttSinkConfig:
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
        retry_cap=c.get(section, path, "retry_cap", float, default=60.0, minimum=1, maximum=3600),
        timeout=c.get(section, path, "timeout", float, default=10.0, minimum=0.5, maximum=300))


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


def _heartbeat(c: ConfigCollector, raw: dict[str, Any], sinks: dict[str, SinkConfig]) -> HeartbeatConfig | None:
    if "heartbeat" not in raw:
        return None
    h = _table(c, raw, "heartbeat")
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
