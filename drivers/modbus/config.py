"""The typed configuration of one Modbus device: its transport, timing and tag map.

This module owns parsing and validating a `[devices.<name>]` section whose
`type` is `modbus_tcp`, `modbus_rtu` (RTU or ASCII over a serial port) or
`modbus_rtu_over_tcp` (RTU frames through a serial-to-Ethernet converter) into
a frozen `ModbusDeviceConfig`, reporting every problem with its full key path
through `ConfigCollector`; each transport accepts only its own keys. The tag
map is parsed by `tags.py`. It does not open connections or plan reads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from drivers.base import ConfigCollector
from drivers.modbus.tags import BIT_FUNCTIONS, MAX_ADDRESS, TagConfig, parse_tags

__all__ = ["ModbusDeviceConfig", "TagConfig", "parse_device", "TRANSPORTS",
           "MAX_READ_REGISTERS", "MAX_READ_BITS", "MAX_ADDRESS"]

TRANSPORTS: tuple[str, ...] = ("modbus_tcp", "modbus_rtu", "modbus_rtu_over_tcp")
MAX_READ_REGISTERS = 125  # protocol limit of one read holding/input registers request
MAX_READ_BITS = 2000      # protocol limit of one read coils/discrete inputs request
BACKENDS: tuple[str, ...] = ("pymodbus", "minimalmodbus")
MODES: tuple[str, ...] = ("rtu", "ascii")
PARITIES: tuple[str, ...] = ("N", "E", "O")

_COMMON_KEYS = {"type", "unit_id", "poll_interval", "timeout", "machine", "max_gap",
                "max_bit_gap", "max_registers", "max_bits", "tags"}
_NETWORK_KEYS = {"host", "port"}
_SERIAL_KEYS = {"port", "baudrate", "parity", "stopbits", "bytesize", "backend", "mode",
                "close_port_after_each_call", "handle_local_echo"}
_BUS_KEYS = {"retry_period"}
_KEYS: dict[str, set[str]] = {
    "modbus_tcp": _COMMON_KEYS | _NETWORK_KEYS,
    "modbus_rtu": _COMMON_KEYS | _SERIAL_KEYS | _BUS_KEYS,
    "modbus_rtu_over_tcp": _COMMON_KEYS | _NETWORK_KEYS | _BUS_KEYS,
}


@dataclass(frozen=True)
class ModbusDeviceConfig:
    """One Modbus device (a PLC, an instrument on a bus, a gateway port) and its tags.

    `host`/`port` address a TCP peer; for `modbus_rtu`, `host` is None and
    `port` is the serial port's path.
    """

    host: str | None
    port: int | str = 502
    unit_id: int = 1
    poll_interval: float = 1.0
    timeout: float = 2.0
    machine: str | None = None
    max_gap: int = 8
    tags: dict[str, TagConfig] = field(default_factory=dict)
    transport: str = "modbus_tcp"
    baudrate: int = 19200
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8
    backend: str = "pymodbus"
    mode: str = "rtu"
    close_port_after_each_call: bool = False
    handle_local_echo: bool = False
    retry_period: float = 10.0
    max_registers: int = MAX_READ_REGISTERS
    max_bits: int = MAX_READ_BITS
    max_bit_gap: int = 32

    @property
    def shared_bus(self) -> bool:
        """Several devices (unit ids) share this device's line: serial or RTU over TCP."""
        return self.transport != "modbus_tcp"

    @property
    def bus_key(self) -> str:
        """Identifies the physical line: devices with the same key share one connection."""
        if self.transport == "modbus_rtu":
            return f"serial:{self.port}"
        return f"{self.transport}:{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """`host=... port=...` or `port=/dev/...`, for log lines."""
        if self.transport == "modbus_rtu":
            return f"port={self.port}"
        return f"host={self.host} port={self.port}"

    @property
    def line_settings(self) -> tuple[Any, ...]:
        """What every device sharing the line must agree on."""
        if self.transport == "modbus_rtu":
            return (self.backend, self.mode, self.baudrate, self.parity, self.stopbits,
                    self.bytesize, self.close_port_after_each_call, self.handle_local_echo)
        return (self.transport,)


def parse_device(section: dict[str, Any], path: str,
                 issues: ConfigCollector) -> ModbusDeviceConfig | None:
    """Validate a device section; returns None when any problem was reported."""
    before = len(issues.issues)
    if not isinstance(section, dict):
        issues.add(path, f"must be a table, got {section!r}")
        return None
    transport = issues.get(section, path, "type", str, default="modbus_tcp", choices=TRANSPORTS)
    if transport is None:
        transport = "modbus_tcp"
    _check_keys(section, path, issues, transport)
    values: dict[str, Any] = {"transport": transport}
    if transport == "modbus_rtu":
        values.update(_parse_serial(section, path, issues))
        unit_range = (1, 247)  # 0 is the broadcast address: it never answers a read
    else:
        host = issues.get(section, path, "host", str, required=True)
        if isinstance(host, str) and not host.strip():
            issues.add(f"{path}.host", "must not be empty")
        values["host"] = host
        values["port"] = issues.get(section, path, "port", int, default=502,
                                    minimum=1, maximum=65535)
        unit_range = (0, 247)
    values["unit_id"] = issues.get(section, path, "unit_id", int, default=1,
                                   minimum=unit_range[0], maximum=unit_range[1])
    values["poll_interval"] = _positive(issues, section, path, "poll_interval", 1.0)
    values["timeout"] = _positive(issues, section, path, "timeout", 2.0)
    values["machine"] = issues.get(section, path, "machine", str)
    if transport != "modbus_tcp":
        retry = issues.get(section, path, "retry_period", float, default=10.0)
        if not math.isfinite(retry) or retry < 0:
            issues.add(f"{path}.retry_period", f"must be a number >= 0, got {retry!r}")
            retry = 10.0
        values["retry_period"] = retry
    values["max_registers"] = issues.get(section, path, "max_registers", int,
                                         default=MAX_READ_REGISTERS, minimum=1,
                                         maximum=MAX_READ_REGISTERS)
    values["max_bits"] = issues.get(section, path, "max_bits", int, default=MAX_READ_BITS,
                                    minimum=1, maximum=MAX_READ_BITS)
    values["max_gap"] = issues.get(section, path, "max_gap", int, default=8,
                                   minimum=0, maximum=MAX_READ_REGISTERS - 2)
    values["max_bit_gap"] = issues.get(section, path, "max_bit_gap", int, default=32,
                                       minimum=0, maximum=MAX_READ_BITS - 2)
    tags = parse_tags(section, path, issues)
    _check_tag_sizes(tags, path, issues, values["max_registers"] or MAX_READ_REGISTERS)
    if len(issues.issues) > before:
        return None
    return ModbusDeviceConfig(tags=tags, **values)


def _check_keys(section: dict[str, Any], path: str, issues: ConfigCollector,
                transport: str) -> None:
    allowed = _KEYS[transport]
    for key in section:
        if key in allowed:
            continue
        owners = [t for t in TRANSPORTS if key in _KEYS[t]]
        if owners:
            issues.add(f"{path}.{key}", f"is not used by {transport} (only by "
                                        f"{' and '.join(owners)})")
        else:
            issues.add(f"{path}.{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _parse_serial(section: dict[str, Any], path: str, issues: ConfigCollector) -> dict[str, Any]:
    port = issues.get(section, path, "port", str, required=True)
    if isinstance(port, str) and not port.strip():
        issues.add(f"{path}.port", "must not be empty (a serial port such as "
                                   "/dev/serial/by-id/usb-...)")
    backend = issues.get(section, path, "backend", str, default="pymodbus", choices=BACKENDS)
    close_after = issues.get(section, path, "close_port_after_each_call", bool, default=False)
    if close_after and backend != "minimalmodbus":
        issues.add(f"{path}.close_port_after_each_call",
                   'only with backend = "minimalmodbus"')
    return {
        "host": None,
        "port": port,
        "baudrate": issues.get(section, path, "baudrate", int, default=19200,
                               minimum=50, maximum=4_000_000),
        "parity": issues.get(section, path, "parity", str, default="N", choices=PARITIES),
        "stopbits": issues.get(section, path, "stopbits", int, default=1, choices=(1, 2)),
        "bytesize": issues.get(section, path, "bytesize", int, default=8, choices=(7, 8)),
        "backend": backend,
        "mode": issues.get(section, path, "mode", str, default="rtu", choices=MODES),
        "close_port_after_each_call": close_after,
        "handle_local_echo": issues.get(section, path, "handle_local_echo", bool, default=False),
    }


def _check_tag_sizes(tags: dict[str, TagConfig], path: str, issues: ConfigCollector,
                     max_registers: int) -> None:
    for tag in tags.values():
        if tag.function not in BIT_FUNCTIONS and tag.count > max_registers:
            issues.add(f"{path}.tags.{tag.name}",
                       f"needs {tag.count} registers but max_registers is {max_registers}")


def _positive(issues: ConfigCollector, section: dict[str, Any], path: str, key: str,
              default: float) -> float:
    value = issues.get(section, path, key, float, default=default)
    if not math.isfinite(value) or value <= 0:
        issues.add(f"{path}.{key}", f"must be a number > 0, got {value!r}")
        return default
    return value
