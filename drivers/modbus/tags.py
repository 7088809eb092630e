"""The tag map of a Modbus device: one `TagConfig` per `[devices.<name>.tags.<tag>]`.

This module owns what a tag is (function, address, data type, orders, bit,
string length, scale, whether it may be written) and validating a `tags`
table into `TagConfig`s, reporting every problem with its full key path
through `ConfigCollector`. It does not know about transports or requests.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from drivers.base import ConfigCollector
from drivers.modbus.codec import (BYTE_ORDERS, DATA_TYPES, MAX_STRING_REGISTERS, NUMERIC_TYPES,
                                  WORD_ORDERS, register_count)

#: the four Modbus data tables
FUNCTIONS: tuple[str, ...] = ("coil", "discrete", "holding", "input")
BIT_FUNCTIONS: frozenset[str] = frozenset({"coil", "discrete"})
READ_ONLY_FUNCTIONS: frozenset[str] = frozenset({"discrete", "input"})
#: other spellings seen in device manuals, with the name to use instead
_FUNCTION_HINTS = {"coils": "coil", "discrete_input": "discrete", "discrete_inputs": "discrete",
                   "holding_register": "holding", "holding_registers": "holding",
                   "input_register": "input", "input_registers": "input"}
MAX_ADDRESS = 65535

_TAG_NAME = re.compile(r"[A-Za-z0-9_-]+")
_TAG_KEYS = {"function", "address", "type", "word_order", "byte_order", "scale", "offset",
             "bit", "length", "writable"}


@dataclass(frozen=True)
class TagConfig:
    """One tag: where its registers (or bits) are and how to turn them into a value."""

    name: str
    function: str            # "coil" | "discrete" | "holding" | "input"
    address: int             # zero-based protocol address of the first register or bit
    type: str                # see codec.DATA_TYPES; "bool" for coils and discrete inputs
    word_order: str = "big"  # of multi-register values: "big" = high word first
    scale: float = 1.0
    offset: float = 0.0
    byte_order: str = "big"  # within each register: "big" = as the protocol sends it
    bit: int | None = None   # for a bool read from a register: 0 = least significant bit
    length: int | None = None  # for a string: registers
    writable: bool = False

    @property
    def is_bit(self) -> bool:
        """Read from a coil or discrete input (one bit), not from registers."""
        return self.function in BIT_FUNCTIONS

    @property
    def count(self) -> int:
        """Registers (or, for coils and discrete inputs, bits) this tag occupies."""
        return 1 if self.is_bit else register_count(self.type, self.length)

    @property
    def end(self) -> int:
        """Address of the last register (or bit) of this tag."""
        return self.address + self.count - 1


def parse_tags(section: dict[str, Any], path: str,
               issues: ConfigCollector) -> dict[str, TagConfig]:
    """Validate the `tags` table of a device section; invalid tags are left out."""
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
    meant = function if isinstance(function, str) else None
    if isinstance(function, str) and function in _FUNCTION_HINTS:
        meant = _FUNCTION_HINTS[function]
        issues.add(f"{path}.function", f"must be one of {', '.join(FUNCTIONS)}, got "
                                        f"{function!r} (did you mean {meant!r}?)")
        function = None
    else:
        function = issues.get(raw, path, "function", str, required=True, choices=FUNCTIONS)
    address = issues.get(raw, path, "address", int, required=True, minimum=0, maximum=MAX_ADDRESS)
    bit = issues.get(raw, path, "bit", int, minimum=0, maximum=15)
    is_bit_table = meant in BIT_FUNCTIONS
    default_type = "bool" if is_bit_table or bit is not None else None
    data_type = issues.get(raw, path, "type", str, default=default_type,
                           required=default_type is None, choices=DATA_TYPES)
    length = issues.get(raw, path, "length", int, minimum=1, maximum=MAX_STRING_REGISTERS)
    word_order = issues.get(raw, path, "word_order", str, default="big", choices=WORD_ORDERS)
    byte_order = issues.get(raw, path, "byte_order", str, default="big", choices=BYTE_ORDERS)
    scale = issues.get(raw, path, "scale", float, default=1.0)
    offset = issues.get(raw, path, "offset", float, default=0.0)
    writable = issues.get(raw, path, "writable", bool, default=False)
    if not math.isfinite(scale) or scale == 0:
        issues.add(f"{path}.scale", f"must be a finite number other than 0, got {scale!r}")
    if not math.isfinite(offset):
        issues.add(f"{path}.offset", f"must be a finite number, got {offset!r}")

    if function is not None and data_type is not None:
        _check_shape(raw, path, issues, function, data_type, bit, length)
    if writable and function in READ_ONLY_FUNCTIONS:
        table = "discrete inputs" if function == "discrete" else "input registers"
        issues.add(f"{path}.writable", f"{table} are read-only; only coil and holding tags "
                                       f"can be writable")
    elif writable and bit is not None:
        issues.add(f"{path}.writable", "one bit of a register cannot be written on its own "
                                       "(read-modify-write is not atomic); write the whole "
                                       "register as a uint16 tag, or use a coil")
    if isinstance(address, int) and function is not None and data_type is not None \
            and not is_bit_table and (data_type != "string" or isinstance(length, int)):
        last = address + register_count(data_type, length) - 1
        if last > MAX_ADDRESS:
            issues.add(f"{path}.address", f"{data_type} at {address} would end at register "
                                          f"{last}, beyond {MAX_ADDRESS}")
    if len(issues.issues) > before:
        return None
    return TagConfig(name=name, function=function, address=address, type=data_type,
                     word_order=word_order, scale=scale, offset=offset, byte_order=byte_order,
                     bit=bit, length=length, writable=writable)


def _check_shape(raw: dict[str, Any], path: str, issues: ConfigCollector, function: str,
                 data_type: str, bit: int | None, length: int | None) -> None:
    """The keys that only make sense together: bit/bool, length/string, scale/numeric."""
    if function in BIT_FUNCTIONS:
        if data_type != "bool":
            issues.add(f"{path}.type", f"a {function} is one bit: type must be bool, "
                                       f"got {data_type!r}")
        if bit is not None:
            issues.add(f"{path}.bit", f"only for a bool read from a holding or input "
                                      f"register; a {function} is already one bit")
    elif data_type == "bool" and bit is None:
        issues.add(f"{path}.bit", "is required for a bool read from a register (0..15, "
                                  "0 = least significant bit)")
    elif data_type != "bool" and bit is not None:
        issues.add(f"{path}.bit", f"only for type bool, got type {data_type!r}")
    if data_type == "string" and length is None:
        issues.add(f"{path}.length", "is required for a string (registers, 2 characters each)")
    elif data_type != "string" and "length" in raw:
        issues.add(f"{path}.length", f"only for type string, got type {data_type!r}")
    if data_type not in NUMERIC_TYPES:
        for key in ("scale", "offset", "word_order"):
            if key in raw:
                issues.add(f"{path}.{key}", f"only for numeric types, got type {data_type!r}")
    if function in BIT_FUNCTIONS and "byte_order" in raw:
        issues.add(f"{path}.byte_order", f"only for register tags, not for a {function}")
