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
from gateway.extras import missing
from gateway.servicelevel import DEFAULT_TARGETS
from gateway.registry import MissingExtra, driver_class, driver_types
from gateway.rules import config as rule_config
from gateway.rules.plausible import DEFAULT_MAX_RATE
from gateway.rules.config import (EdgeRuleConfig, RuleConfig, ScanRuleConfig, ThresholdRuleConfig,
                                  WeightRuleConfig)
from gateway.sinks.config import (BUSINESS_KINDS, AlarmCode, HeartbeatConfig, MqttSinkConfig, OdooSinkConfig,
                                  SinkConfig, parse_heartbeat, parse_sinks)
from gateway.sinks.config import table as _table
from gateway.sinks.labels.config import LabelSinkConfig

__all__ = ["AlarmCode", "BUSINESS_KINDS", "EdgeRuleConfig", "HeartbeatConfig", "LabelSinkConfig", "MqttSinkConfig",
           "OdooSinkConfig", "ScanRuleConfig", "SinkConfig", "ThresholdRuleConfig", "WeightRuleConfig"]

#: the one pattern of every name a person gives: gateway id and site, devices, tags, rules, machines,
#: sinks and console users (docs/configuration.md, SECURITY.md). Safe in a URL path, a file name, an
#: MQTT topic level and HTML without escaping; `CNC-01` and `line2.press_3` are names.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
NAME_RULE = "1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
_NAME = re.compile(NAME_PATTERN)


def name_problem(name: Any) -> str | None:
    """Why `name` is not a name (None when it is one)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        shown = name if not isinstance(name, str) or len(name) <= 80 else name[:80] + f"... ({len(name)} characters)"
        return f"names are {NAME_RULE}, got {shown!r}"
    return None
#: what an MQTT sink publishes by default: every business kind (the gateway's status
#: goes to the heartbeat's own topic)


@dataclass(frozen=True)
class GatewayConfig:
    id: str
    site: str
    #: seconds a supervised task may keep dying (no stable run in between) before the gateway
    #: stops feeding systemd's watchdog, so that systemd restarts the whole process
    restart_window_s: float = 600.0
    #: dev | test | prod: shown in the console, the heartbeat and every event's context; a prod
    #: gateway refuses a sandbox Odoo and non-TLS destinations (see `_environment`)
    environment: str = "dev"


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
class FilesConfig:
    """Directories the installation declares for file-path settings (absolute; symlinks resolved).

    A file-path setting outside its kind's directories is refused, and so is any path
    into the gateway's own files under its state directory (device key, accounts, console,
    store), wherever the declarations point.
    """

    secrets: tuple[str, ...] = ("/etc/linebridge/secrets",)  # api_key_file, password_file
    tls: tuple[str, ...] = ("/etc/linebridge/tls",)          # CA, certificate and key files
    pki: tuple[str, ...] = ("/var/lib/linebridge/pki",)      # OPC-UA pki_dir, besides <state>/pki
    drops: tuple[str, ...] = ("/srv/linebridge",)            # file-drop devices' directories
    system: tuple[str, ...] = ("/etc/linebridge",)           # [webui] timesyncd_conf, ssh_authorized_keys


#: file-path keys, wherever they appear in a device or sink section, and the kind of directory they need
FILE_KEYS = {"api_key_file": "secrets", "password_file": "secrets", "ca_file": "tls", "certfile": "tls",
             "keyfile": "tls", "certificate": "tls", "private_key": "tls", "server_certificate": "tls",
             "pki_dir": "pki", "timesyncd_conf": "system", "ssh_authorized_keys": "system"}
#: what under a state directory no setting may name, whatever [files] declares
OWN_FILES = ("keys", "webui", "store", ".system")


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
    max_rate: float = DEFAULT_MAX_RATE  # parts per second beyond which a jump is implausible (0 = no check)
    poll_interval: float = 0.0      # the device's poll interval: the cap never covers less time than one poll


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
    ideal_cycle: float | None = None  # OEE: ideal seconds per part (overrides the one read from Odoo)


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
    files: FilesConfig = FilesConfig()
    #: seconds from an event's source time to its acknowledgement, per kind (`default`: the rest)
    service_levels: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TARGETS))

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


_TOP = {"gateway", "store", "devices", "rules", "machines", "sinks", "heartbeat", "shifts", "webui", "files",
        "service_levels"}
ENVIRONMENTS = ("dev", "test", "prod")
#: the database `linebridge sandbox odoo` serves by default: a prod gateway never delivers there
SANDBOX_DATABASE = "sandbox"


#: a configuration file larger than this is refused unread (the sample with every driver is ~10 KiB)
MAX_CONFIG_BYTES = 4 << 20


def load(path: Path | str | list[Path] | list[str], state_dir: Path | None = None) -> Config:
    """Read and validate `path` (or layers: a list of files, later ones win); raise ConfigError
    listing every problem."""
    if isinstance(path, list):
        return load_layers([Path(p) for p in path], state_dir)
    p = Path(path)
    return parse(read_text(p), source=p.name, state_dir=state_dir)


def load_layers(paths: list[Path], state_dir: Path | None = None) -> Config:
    """Merge the files in order (a later file wins per key, tables merge) and validate the result
    as one; each problem names the file that set the value it is about."""
    if len(paths) == 1:
        return load(paths[0], state_dir)
    texts: list[tuple[str, str]] = []
    problems: list[str] = []
    for p in paths:
        try:
            texts.append((p.name, read_text(p)))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return parse_layers(texts, state_dir)


def parse_layers(layers: list[tuple[str, str]], state_dir: Path | None = None) -> Config:
    """Validate the TOML texts `layers` (file name, text) merged in order, as `load_layers` does."""
    if len(layers) == 1:
        return parse(layers[0][1], source=layers[0][0], state_dir=state_dir)
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    problems: list[str] = []
    for name, text in layers:
        try:
            _merge(merged, _toml(text, name), name, origin, "")
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    source = "+".join(name for name, _ in layers)
    try:
        return validate(merged, source, state_dir)
    except RecursionError:
        raise ConfigError([f"{source}: values nested too deeply"]) from None
    except ConfigError as exc:
        raise ConfigError([_blame(problem, source, origin) for problem in exc.problems]) from None


def _merge(into: dict[str, Any], layer: dict[str, Any], name: str, origin: dict[str, str], path: str) -> None:
    for key, value in layer.items():
        where = f"{path}.{key}" if path else str(key)
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            origin.setdefault(where, origin.get(where, name))
            _merge(into[key], value, name, origin, where)
            continue
        into[key] = value
        for inner in [k for k in origin if k == where or k.startswith(where + ".")]:
            del origin[inner]
        origin[where] = name
        if isinstance(value, dict):
            _origins(value, name, origin, where)


def _origins(table: dict[str, Any], name: str, origin: dict[str, str], path: str) -> None:
    for key, value in table.items():
        origin[f"{path}.{key}"] = name
        if isinstance(value, dict):
            _origins(value, name, origin, f"{path}.{key}")


def _blame(problem: str, source: str, origin: dict[str, str]) -> str:
    """`source: key.path: reason` with `source` replaced by the file that set `key.path` (or its
    nearest table); a key no file set keeps the joined name."""
    issue = problem[len(source) + 2:] if problem.startswith(source + ": ") else problem
    key = re.sub(r"\[\d+\]", "", issue.split(": ", 1)[0])
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in origin:
            return f"{origin['.'.join(parts[:n])]}: {issue}"
    return problem


def read_text(p: Path) -> str:
    """The text of the configuration file `p`, refused when unreadable, too large or not UTF-8."""
    try:
        with p.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror or exc}"]) from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{p.name}: larger than {MAX_CONFIG_BYTES >> 20} MiB, not a configuration file"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError([f"{p.name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}); "
                           "save the file as UTF-8"]) from None
    return text


def _toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: not valid TOML: {exc}"]) from exc
    except RecursionError:
        raise ConfigError([f"{source}: not valid TOML: arrays or tables nested too deeply"]) from None


def parse(text: str, source: str = "<config>", state_dir: Path | None = None) -> Config:
    """Validate TOML text; `source` names the file in error messages, `state_dir` is the gateway's
    (its own files are refused as file-path settings, as are the default state directory's)."""
    raw = _toml(text, source)
    try:
        return validate(raw, source, state_dir)
    except RecursionError:
        raise ConfigError([f"{source}: values nested too deeply"]) from None


def validate(raw: dict[str, Any], source: str = "<config>", state_dir: Path | None = None) -> Config:
    c = ConfigCollector()
    c.unknown_keys(raw, "", _TOP)
    files = _files(c, _table(c, raw, "files"))
    # before anything reads a file: the paths a section names must be where the installation allows
    _check_paths(c, raw, files, state_dir)

    g = _table(c, raw, "gateway")
    c.unknown_keys(g, "gateway", {"id", "site", "restart_window_s", "environment"})
    gid = c.get(g, "gateway", "id", str, required=True, default="gateway")
    site = c.get(g, "gateway", "site", str, default="default")
    for key, val in (("id", gid), ("site", site)):
        if isinstance(val, str) and not _NAME.fullmatch(val):
            c.add(f"gateway.{key}", f"must be letters, digits, '-', '_' or '.', got {val!r}")
    window = c.get(g, "gateway", "restart_window_s", float, default=GatewayConfig.restart_window_s,
                   minimum=10.0, maximum=7 * 86400.0)
    environment = c.get(g, "gateway", "environment", str, default="dev", choices=ENVIRONMENTS)
    gateway = GatewayConfig(gid, site, window, environment or "dev")

    store = _store(c, _table(c, raw, "store"))

    device_table = _table(c, raw, "devices")
    devices = _devices(c, device_table)
    # rules refer to tags as each driver names them, or as written when the device has errors
    declared = {name: _written_tags(sec) for name, sec in device_table.items()}
    declared.update({name: tag_names(spec.config) for name, spec in devices.items()})
    machines = _machines(c, _table(c, raw, "machines"))
    rules = _rules(c, _table(c, raw, "rules"), devices, declared)
    sinks = parse_sinks(c, _table(c, raw, "sinks"), gateway)
    heartbeat = parse_heartbeat(c, raw, sinks)
    if gateway.environment == "prod":
        _prod_destinations(c, sinks)
    levels = _service_levels(c, _table(c, raw, "service_levels"))
    shifts = parse_shifts(c, raw.get("shifts"))

    for name, dev in devices.items():
        if dev.machine and machines and dev.machine not in machines:
            c.add(f"devices.{name}.machine", f"machine {dev.machine!r} is not defined under [machines]")
    webui = _webui(c, raw["webui"]) if isinstance(raw.get("webui"), dict) else None
    if "webui" in raw and webui is None:
        c.add("webui", "must be a table")
    # the libraries of what is configured: said now, with the pip command, not at the first import
    for name, sink in sinks.items():
        if isinstance(sink, LabelSinkConfig):
            if sink.protocol != "zpl" and (problem := missing("labels")):   # ZPL needs no library
                c.add(f"sinks.{name}", f"the IPP (PDF) label printer {problem}")
            continue
        extra = "mqtt" if isinstance(sink, MqttSinkConfig) else "odoo"
        if problem := missing(extra):
            c.add(f"sinks.{name}", f"the {extra} sink {problem}")
    if webui is not None and (problem := missing("webui")):
        c.add("webui", f"the web UI {problem}")
    if not sinks and (rules or webui is None):
        # a fresh appliance may start with nothing but its console; events need somewhere to go
        c.add("sinks", "at least one sink is required (events need somewhere to go)")

    if c.issues:
        raise ConfigError([f"{source}: {issue}" for issue in c.issues])
    return Config(source, gateway, store, devices, rules, machines, sinks, heartbeat, shifts, webui, files, levels)


def _prod_destinations(c: ConfigCollector, sinks: dict[str, SinkConfig]) -> None:
    """A prod gateway delivers over TLS to a real Odoo: http:// and mqtt:// only with `allow_insecure`."""
    for name, sink in sinks.items():
        path = f"sinks.{name}"
        if isinstance(sink, OdooSinkConfig):
            if sink.database == SANDBOX_DATABASE:
                c.add(f"{path}.database", f"a prod gateway ([gateway] environment) refuses the sandbox Odoo "
                                          f"(database {SANDBOX_DATABASE!r})")
            if sink.url.startswith("http://") and not sink.allow_insecure:
                c.add(f"{path}.url", f"a prod gateway ([gateway] environment) needs https://, got {sink.url!r} "
                                     "(set allow_insecure = true on this sink to accept it)")
        elif isinstance(sink, MqttSinkConfig) and not sink.tls and not sink.allow_insecure:
            c.add(f"{path}.url", f"a prod gateway ([gateway] environment) needs mqtts://, got {sink.url!r} "
                                 "(set allow_insecure = true on this sink to accept it)")


def _service_levels(c: ConfigCollector, t: dict[str, Any]) -> dict[str, float]:
    """`[service_levels]`: seconds per event kind (or `default`) within which delivery is on target."""
    c.unknown_keys(t, "service_levels", set(KINDS) | {"default"})
    out = dict(DEFAULT_TARGETS)
    for kind in sorted(set(t) & (set(KINDS) | {"default"})):
        value = c.get(t, "service_levels", kind, float, minimum=1.0, maximum=30 * 86400.0)
        if value is not None:
            out[kind] = float(value)
    return out


def _files(c: ConfigCollector, f: dict[str, Any]) -> FilesConfig:
    d = FilesConfig()
    c.unknown_keys(f, "files", {"secrets", "tls", "pki", "drops", "system"})
    out: dict[str, tuple[str, ...]] = {}
    for kind in ("secrets", "tls", "pki", "drops", "system"):
        dirs = c.get(f, "files", kind, list, default=list(getattr(d, kind)))
        good = []
        for i, value in enumerate(dirs or []):
            if not isinstance(value, str) or not value.startswith("/"):
                c.add(f"files.{kind}[{i}]", f"must be an absolute directory, got {value!r}")
            else:
                good.append(value)
        out[kind] = tuple(good)
    return FilesConfig(**out)


def default_state_dir() -> Path:
    """`/var/lib/linebridge` for root, else `$XDG_STATE_HOME/linebridge` (~/.local/state)."""
    if os.geteuid() == 0:
        return Path("/var/lib/linebridge")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "linebridge"


def _inside(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def path_problem(value: str, kind: str, files: FilesConfig, state_dir: Path | None = None) -> str | None:
    """Why the file-path setting `value` (of `kind`: secrets, tls, drops or system) is refused, or None.

    Symlinks and `..` are resolved first, so neither leads out of a declared directory.
    """
    real = os.path.realpath(value)
    states = {os.path.realpath(default_state_dir())} | ({os.path.realpath(state_dir)} if state_dir else set())
    own = [os.path.join(s, part) for s in states for part in OWN_FILES]
    if _inside(real, own):
        return f"{value!r} is one of the gateway's own files (keys, accounts, console, store); refused"
    allowed = [os.path.realpath(d) for d in getattr(files, kind)]
    if kind == "pki":   # the OPC-UA client identities live under the state directory by default
        allowed += [os.path.join(st, "pki") for st in states]
    if not _inside(real, allowed):
        return (f"{value!r} is outside the directories declared for {kind} files "
                f"([files] {kind} = {list(getattr(files, kind))})")
    return None


def _check_paths(c: ConfigCollector, raw: dict[str, Any], files: FilesConfig, state_dir: Path | None) -> None:
    def walk(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{path}.{key}")
            elif key in FILE_KEYS and isinstance(value, str) and value:
                problem = path_problem(value, FILE_KEYS[key], files, state_dir)
                if problem:
                    c.add(f"{path}.{key}", problem)
    for part in ("devices", "sinks"):
        table = raw.get(part)
        if isinstance(table, dict):
            for name, section in table.items():
                walk(section, f"{part}.{name}")
                port = section.get("port") if part == "devices" and isinstance(section, dict) else None
                if isinstance(port, str) and "://" not in port and not _inside(os.path.realpath(port), ["/dev"]):
                    c.add(f"devices.{name}.port", f"a serial port is a device under /dev, got {port!r}")
                if (part == "devices" and isinstance(section, dict) and section.get("type") == "filedrop"
                        and isinstance(section.get("directory"), str) and section["directory"].strip()):
                    problem = path_problem(section["directory"], "drops", files, state_dir)
                    if problem:
                        c.add(f"devices.{name}.directory", problem)
    if isinstance(raw.get("webui"), dict):
        for key in ("timesyncd_conf", "ssh_authorized_keys"):
            value = raw["webui"].get(key)
            if isinstance(value, str) and value.startswith("/"):
                problem = path_problem(value, "system", files, state_dir)
                if problem:
                    c.add(f"webui.{key}", problem)


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
        if name_problem(name):
            c.add(path, f"device {name_problem(name)}")
        if not isinstance(section, dict):
            c.add(path, "must be a table")
            continue
        type_name = c.get(section, path, "type", str, required=True)
        if type_name is None:
            continue
        try:
            cls = driver_class(type_name)
        except MissingExtra as exc:
            c.add(f"{path}.type", f"driver {type_name!r} {exc}")
            continue
        if cls is None:
            c.add(f"{path}.type", f"unknown driver {type_name!r} (known: {', '.join(sorted(driver_types()))})")
            continue
        before = len(c.issues)
        cfg = cls.parse_config(section, path, c)
        for tag in sorted(tag_names(cfg)) if len(c.issues) == before else ():
            if name_problem(tag):
                c.add(f"{path}.tags.{tag}", f"tag {name_problem(tag)}")
        if len(c.issues) == before:
            out[name] = DeviceSpec(name, type_name, cls, cfg, getattr(cfg, "machine", None))
    return out


def _written_tags(section: Any) -> set[str]:
    """The tag names a device section declares as written, whatever shape a mistake gave `tags`."""
    tags = section.get("tags") if isinstance(section, dict) else None
    if isinstance(tags, dict):
        return set(tags)
    return {t for t in tags if isinstance(t, str)} if isinstance(tags, list) else set()


def _machines(c: ConfigCollector, table: dict[str, Any]) -> dict[str, MachineConfig]:
    out: dict[str, MachineConfig] = {}
    for name, section in table.items():
        path = f"machines.{name}"
        if name_problem(name):
            c.add(path, f"machine {name_problem(name)}")
        if not isinstance(section, dict):
            c.add(path, "must be a table")
            continue
        c.unknown_keys(section, path, {"work_center", "equipment", "product", "ideal_cycle"})
        ideal = c.get(section, path, "ideal_cycle", float, minimum=0.001, maximum=86400.0)
        out[name] = MachineConfig(name, c.get(section, path, "work_center", str),
                                  c.get(section, path, "equipment", str),
                                  c.get(section, path, "product", str), ideal)
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
        if name_problem(name):
            c.add(path, f"rule {name_problem(name)}")
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
        max_rate = c.get(section, path, "max_rate", float, default=DEFAULT_MAX_RATE, minimum=0.0, maximum=1e6)
        poll = getattr(devices[device].config, "poll_interval", 0.0) if device in devices else 0.0
        if rtype is not None:
            out[name] = CounterRuleConfig(name, device or "", tag or "", kind or "production",
                                          width or 32, initial or "baseline", window or 1,
                                          DEFAULT_MAX_RATE if max_rate is None else max_rate,
                                          float(poll or 0.0))
    return out
