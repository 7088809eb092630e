"""The typed configuration of one Modbus TCP device and its tags.

This module owns parsing and validating a `[devices.<name>]` section whose
`type` is `modbus_tcp` into frozen dataclasses, reporting every problem with its
full key path through `ConfigCollector`. It does not open connections or plan
reads.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from drivers.base import ConfigCollector
from drivers.modbus.codec import DATA_TYPES, WORD_ORDERS, register_count

FUNCTIONS: tuple[str, ...] = ("holding", "input")
_NOT_YET = ("coil", "coils", "discrete", "discrete_input", "discrete_inputs")
MAX_ADDRESS = 65535
MAX_READ_REGISTERS = 125  # protocol limit of one read holding/input registers request

_DEVICE_KEYS = {"type", "host", "port", "unit_id", "poll_interval", "timeout", "machine",
                "max_gap", "tags"}
_TAG_NAME = re.compile(r"[A-Za-z0-9_-]+")
_TAG_KEYS = {"function", "address", "type", "word_order", "scale", "offset"}


@dataclass(frozen=True)
class TagConfig:
    """One tag: where its registers are and how to turn them into a value."""

    name: str
    function: str          # "holding" | "input"
    address: int           # zero-based protocol address of the first register
    type: str              # "uint16" | "int16" | "uint32" | "int32"
    word_order: str = "big"  # of 32-bit values: "big" = high word first
    scale: float = 1.0
    offset: float = 0.0

    @property
    def count(self) -> int:
        """Registers this tag occupies."""
        return register_count(self.type)

    @property
    def end(self) -> int:
        """Address of the last register of this tag."""
        return self.address + self.count - 1


@dataclass(frozen=True)
class ModbusDeviceConfig:
    """One Modbus TCP device (a PLC or a gateway port) and the tags read from it."""

    host: str
    port: int = 502
    unit_id: int = 1
    poll_interval: float = 1.0
    timeout: float = 2.0
    machine: str | None = None
    max_gap: int = 8
    tags: dict[str, TagConfig] = field(default_factory=dict)


def parse_device(section: dict[str, Any], path: str,
                 issues: ConfigCollector) -> ModbusDeviceConfig | None:
    """Validate a device section; returns None when any problem was reported."""
    before = len(issues.issues)
    if not isinstance(section, dict):
        issues.add(path, f"must be a table, got {section!r}")
        return None
    issues.unknown_keys(section, path, _DEVICE_KEYS)
    issues.get(section, path, "type", str, choices=("modbus_tcp",))
    host = issues.get(section, path, "host", str, required=True)
    if isinstance(host, str) and not host.strip():
        issues.add(f"{path}.host", "must not be empty")
    port = issues.get(section, path, "port", int, default=502, minimum=1, maximum=65535)
    unit_id = issues.get(section, path, "unit_id", int, default=1, minimum=0, maximum=247)
    poll_interval = _positive(issues, section, path, "poll_interval", 1.0)
    timeout = _positive(issues, section, path, "timeout", 2.0)
    machine = issues.get(section, path, "machine", str)
    max_gap = issues.get(section, path, "max_gap", int, default=8,
                         minimum=0, maximum=MAX_READ_REGISTERS - 2)
    tags = _parse_tags(section, path, issues)
    if len(issues.issues) > before:
        return None
    return ModbusDeviceConfig(host=host, port=port, unit_id=unit_id,
                              poll_interval=poll_interval, timeout=timeout,
                              machine=machine, max_gap=max_gap, tags=tags)


def _positive(issues: ConfigCollector, section: dict[str, Any], path: str, key: str,
              default: float) -> float:
    value = issues.get(section, path, key, float, default=default)
    if not math.isfinite(value) or value <= 0:
        issues.add(f"{path}.{key}", f"must be a number > 0, got {value!r}")
        return default
    return value


def _parse_tags(section: dict[str, Any], path: str,
                issues: ConfigCollector) -> dict[str, TagConfig]:
    tags_path = f"{path}.tags"
    raw_tags = issues.get(section, path, "tags", dict, required=True)
    if raw_tags is None:
        return {}
    if not raw_tags:
        issues.add(tags_path, "must define at least one tag")
    tags: dict[str, TagConfig] = {}
    for name, raw in raw_tags.items():
        tag_path = f"{tags_path}.{name}"
        if not _TAG_NAME.fullmatch(name):
            issues.add(tag_path, "tag names may use only letters, digits, '_' and '-'")
            continue
        if not isinstance(raw, dict):
            issues.add(tag_path, f"must be a table, got {raw!r}")
            continue
        tag = _parse_tag(name, raw, tag_path, issues)
        if tag is not None:
            tags[name] = tag
    return tags


def _parse_tag(name: str, raw: dict[str, Any], path: str,
               issues: ConfigCollector) -> TagConfig | None:
    before = len(issues.issues)
    issues.unknown_keys(raw, path, _TAG_KEYS)
    function = raw.get("function")
    if isinstance(function, str) and function in _NOT_YET:
        issues.add(f"{path}.function", f"{function!r} is not supported yet by modbus_tcp; "
                                        f"must be one of {', '.join(FUNCTIONS)}")
    else:
        function = issues.get(raw, path, "function", str, required=True, choices=FUNCTIONS)
    address = issues.get(raw, path, "address", int, required=True,
                         minimum=0, maximum=MAX_ADDRESS)
    data_type = issues.get(raw, path, "type", str, required=True, choices=DATA_TYPES)
    word_order = issues.get(raw, path, "word_order", str, default="big", choices=WORD_ORDERS)
    scale = issues.get(raw, path, "scale", float, default=1.0)
    offset = issues.get(raw, path, "offset", float, default=0.0)
    if not math.isfinite(scale) or scale == 0:
        issues.add(f"{path}.scale", f"must be a finite number other than 0, got {scale!r}")
    if not math.isfinite(offset):
        issues.add(f"{path}.offset", f"must be a finite number, got {offset!r}")
    if isinstance(address, int) and data_type in DATA_TYPES:
        last = address + register_count(data_type) - 1
        if last > MAX_ADDRESS:
            issues.add(f"{path}.address",
                       f"{data_type} at {address} would end at register {last}, "
                       f"beyond {MAX_ADDRESS}")
    if len(issues.issues) > before:
        return None
    return TagConfig(name=name, function=function, address=address, type=data_type,
                     word_order=word_order, scale=scale, offset=offset)
