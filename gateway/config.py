"""The typed, validated configuration: one TOML file, checked whole before anything starts.

Each section has its own small model (gateway, store, devices, rules, machines,
sinks). Validation collects every problem with its key path and reports them
together as `file: key.path: reason`; the same validator serves `check-config`,
`run` and (later) the web UI. Device sections are validated by their driver
class, found through the driver registry. Defaults are safe for a plant:
timeouts on, writes to devices off.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.base import ConfigCollector, Driver
from gateway.context import ShiftCalendar, parse_shifts
from gateway.errors import ConfigError
from gateway.registry import driver_class, driver_types
from gateway.rules import config as rule_config
from gateway.rules.config import (EdgeRuleConfig, RuleConfig, ScanRuleConfig, ThresholdRuleConfig,
                                  WeightRuleConfig)
from gateway.sinks.config import (BUSINESS_KINDS, AlarmCode, HeartbeatConfig, MqttSinkConfig, OdooSinkConfig,
                                  SinkConfig, parse_heartbeat, parse_sinks)
from gateway.sinks.config import table as _table

__all__ = ["AlarmCode", "BUSINESS_KINDS", "EdgeRuleConfig", "HeartbeatConfig", "MqttSinkConfig",
           "OdooSinkConfig", "ScanRuleConfig", "SinkConfig", "ThresholdRuleConfig", "WeightRuleConfig"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: what an MQTT sink publishes by default: every business kind (the gateway's status
#: goes to the heartbeat's own topic)


@dataclass(frozen=True)
class GatewayConfig:
    id: str
    site: str
    #: seconds a supervised task may keep dying (no stable run in between) before the gateway
    #: stops feeding systemd's watchdog, so that systemd restarts the whole process
    restart_window_s: float = 600.0


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
class WebUIConfig:
    """The local web console (served by the `webui` package in the gateway process)."""

    listen: str = "127.0.0.1"
    port: int = 8443
    tls: bool = True              # False only behind a TLS-terminating reverse proxy on this host
    session_minutes: int = 480    # a session ends this long after its last request
    login_attempts: int = 5       # failed logins per address ...
    login_window_s: int = 300     # ... within this window, then that address waits
    # appliance settings the console writes for root to apply (see webui/system.py); "" = not managed
    timesyncd_conf: str = ""      # a systemd-timesyncd drop-in: the NTP servers
    ssh_authorized_keys: str = ""  # root's SSH keys: SSH is on while this holds one


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
    max_rate: float | None = None   # parts per second beyond which a jump is implausible (held for a person)


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
    webui: WebUIConfig | None = None

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


_TOP = {"gateway", "store", "devices", "rules", "machines", "sinks", "heartbeat", "shifts", "webui"}


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


def validate(raw: dict[str, Any], source: str = "<config>") -> Config:
    c = ConfigCollector()
    c.unknown_keys(raw, "", _TOP)

    g = _table(c, raw, "gateway")
    c.unknown_keys(g, "gateway", {"id", "site", "restart_window_s"})
    gid = c.get(g, "gateway", "id", str, required=True, default="gateway")
    site = c.get(g, "gateway", "site", str, default="default")
    for key, val in (("id", gid), ("site", site)):
        if isinstance(val, str) and not _NAME.match(val):
            c.add(f"gateway.{key}", f"must be letters, digits, '-', '_' or '.', got {val!r}")
    window = c.get(g, "gateway", "restart_window_s", float, default=GatewayConfig.restart_window_s,
                   minimum=10.0, maximum=7 * 86400.0)
    gateway = GatewayConfig(gid, site, window)

    store = _store(c, _table(c, raw, "store"))

    device_table = _table(c, raw, "devices")
    devices = _devices(c, device_table)
    # rules refer to tags as each driver names them, or as written when the device has errors
    declared = {name: set((sec.get("tags") or {}) if isinstance(sec, dict) else ())
                for name, sec in device_table.items()}
    declared.update({name: tag_names(spec.config) for name, spec in devices.items()})
    machines = _machines(c, _table(c, raw, "machines"))
    rules = _rules(c, _table(c, raw, "rules"), devices, declared)
    sinks = parse_sinks(c, _table(c, raw, "sinks"), gateway)
    heartbeat = parse_heartbeat(c, raw, sinks)
    shifts = parse_shifts(c, raw.get("shifts"))

    for name, dev in devices.items():
        if dev.machine and machines and dev.machine not in machines:
            c.add(f"devices.{name}.machine", f"machine {dev.machine!r} is not defined under [machines]")
    webui = _webui(c, raw["webui"]) if isinstance(raw.get("webui"), dict) else None
    if "webui" in raw and webui is None:
        c.add("webui", "must be a table")
    if not sinks and (rules or webui is None):
        # a fresh appliance may start with nothing but its console; events need somewhere to go
        c.add("sinks", "at least one sink is required (events need somewhere to go)")

    if c.issues:
        raise ConfigError([f"{source}: {issue}" for issue in c.issues])
    return Config(source, gateway, store, devices, rules, machines, sinks, heartbeat, shifts, webui)


def _webui(c: ConfigCollector, w: dict[str, Any]) -> WebUIConfig:
    c.unknown_keys(w, "webui", {"listen", "port", "tls", "session_minutes", "login_attempts", "login_window_s",
                                "timesyncd_conf", "ssh_authorized_keys"})
    d = WebUIConfig()
    files = {}
    for key in ("timesyncd_conf", "ssh_authorized_keys"):
        files[key] = c.get(w, "webui", key, str, default="")
        if files[key] and not files[key].startswith("/"):
            c.add(f"webui.{key}", f"must be an absolute path (or empty: not managed), got {files[key]!r}")
    return WebUIConfig(
        listen=c.get(w, "webui", "listen", str, default=d.listen),
        port=c.get(w, "webui", "port", int, default=d.port, minimum=1, maximum=65535),
        tls=c.get(w, "webui", "tls", bool, default=d.tls),
        session_minutes=c.get(w, "webui", "session_minutes", int, default=d.session_minutes,
                              minimum=1, maximum=7 * 24 * 60),
        login_attempts=c.get(w, "webui", "login_attempts", int, default=d.login_attempts, minimum=1, maximum=100),
        login_window_s=c.get(w, "webui", "login_window_s", int, default=d.login_window_s, minimum=10, maximum=86400),
        **files)


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


_RULE_KEYS = {"counter": {"type", "device", "tag", "kind", "width", "initial", "rollover_window", "max_rate"},
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
        max_rate = c.get(section, path, "max_rate", float, minimum=0.001, maximum=1e6)
        if rtype is not None:
            out[name] = CounterRuleConfig(name, device or "", tag or "", kind or "production",
                                          width or 32, initial or "baseline", window or 1, max_rate)
    return out
