"""Register and bit codec for the Modbus driver: raw words <-> tag values.

This module owns the data types a tag can have (`bool`, 16/32/64-bit integers,
`float32`, `float64`, `string`), how many 16-bit registers each occupies, the
two orderings devices disagree on (`byte_order`: the two bytes inside each
register; `word_order`: the registers of a multi-register value), reading one
bit of a register, and scaling. It works with `struct` only and does not use
pymodbus payload helpers, which change between pymodbus versions. It knows
nothing about connections, requests or configuration files.

The Modbus protocol sends each register big-endian, so `byte_order = "big"`,
`word_order = "big"` is the protocol's natural order (high word first); the
`little` variants describe devices that swap bytes or words.
"""
from __future__ import annotations

import math
import struct
from typing import Sequence

#: registers occupied by each fixed-size data type (`string` takes its `length`)
REGISTER_COUNT: dict[str, int] = {
    "bool": 1,  # one bit of one register (coils and discrete inputs are bits, not registers)
    "uint16": 1, "int16": 1,
    "uint32": 2, "int32": 2, "float32": 2,
    "uint64": 4, "int64": 4, "float64": 4,
}

#: struct code of each numeric data type (big-endian over the ordered bytes)
_FORMAT: dict[str, str] = {"uint16": "H", "int16": "h", "uint32": "I", "int32": "i",
                           "uint64": "Q", "int64": "q", "float32": "f", "float64": "d"}

NUMERIC_TYPES: tuple[str, ...] = tuple(_FORMAT)
INTEGER_TYPES: tuple[str, ...] = ("uint16", "int16", "uint32", "int32", "uint64", "int64")
FLOAT_TYPES: tuple[str, ...] = ("float32", "float64")
DATA_TYPES: tuple[str, ...] = ("bool", *NUMERIC_TYPES, "string")
WORD_ORDERS: tuple[str, ...] = ("big", "little")
BYTE_ORDERS: tuple[str, ...] = ("big", "little")
#: longest string a tag may hold, in registers (one read request)
MAX_STRING_REGISTERS = 125


class CodecError(ValueError):
    """Registers or a value that cannot be converted for the given type."""


def register_count(data_type: str, length: int | None = None) -> int:
    """How many 16-bit registers a value of `data_type` occupies (`length` for strings)."""
    if data_type == "string":
        if not isinstance(length, int) or not 1 <= length <= MAX_STRING_REGISTERS:
            raise CodecError(f"string needs a length of 1..{MAX_STRING_REGISTERS} registers, "
                             f"got {length!r}")
        return length
    try:
        return REGISTER_COUNT[data_type]
    except KeyError:
        raise CodecError(f"unknown data type {data_type!r}") from None


def integer_range(data_type: str) -> tuple[int, int]:
    """Smallest and largest raw value of an integer type."""
    bits = int(data_type.removeprefix("u").removeprefix("int"))
    if data_type.startswith("u"):
        return 0, 2 ** bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _to_bytes(registers: Sequence[int], word_order: str, byte_order: str) -> bytes:
    """Registers as the device sent them -> bytes of the value, most significant first."""
    if word_order not in WORD_ORDERS:
        raise CodecError(f"unknown word order {word_order!r}")
    if byte_order not in BYTE_ORDERS:
        raise CodecError(f"unknown byte order {byte_order!r}")
    for reg in registers:
        if not isinstance(reg, int) or not 0 <= reg <= 0xFFFF:
            raise CodecError(f"register value out of range: {reg!r}")
    words = list(registers) if word_order == "big" else list(reversed(registers))
    if byte_order == "little":
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return struct.pack(f">{len(words)}H", *words)


def _from_bytes(raw: bytes, word_order: str, byte_order: str) -> list[int]:
    """Inverse of `_to_bytes`: value bytes -> registers in the device's order."""
    words = list(struct.unpack(f">{len(raw) // 2}H", raw))
    if byte_order == "little":
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return words if word_order == "big" else list(reversed(words))


def decode(registers: Sequence[int], data_type: str, word_order: str = "big",
           byte_order: str = "big", *, bit: int | None = None,
           length: int | None = None) -> int | float | str | bool:
    """Turn the registers of one tag into its raw value.

    `registers` must hold exactly `register_count(data_type, length)` values,
    each 0..65535, in the order the device sent them. A `bool` is bit `bit`
    (0 = least significant) of the register after `byte_order` is applied.
    A `string` is its bytes in register order, cut at the first NUL, with
    trailing spaces removed, decoded as Latin-1 (every byte is a character).
    """
    if data_type == "string" and length is None:
        length = len(registers)  # the whole slice is the string
    count = register_count(data_type, length)
    if len(registers) != count:
        raise CodecError(f"{data_type} needs {count} register(s), got {len(registers)}")
    if data_type == "bool":
        if bit is None or not 0 <= bit <= 15:
            raise CodecError(f"a bool from a register needs a bit 0..15, got {bit!r}")
        word = struct.unpack(">H", _to_bytes(registers, "big", byte_order))[0]
        return bool((word >> bit) & 1)
    if data_type == "string":
        raw = _to_bytes(registers, "big", byte_order)
        return raw.split(b"\x00", 1)[0].decode("latin-1").rstrip(" ")
    return struct.unpack(">" + _FORMAT[data_type], _to_bytes(registers, word_order, byte_order))[0]


def encode(value: int | float | str, data_type: str, word_order: str = "big",
           byte_order: str = "big", *, length: int | None = None) -> list[int]:
    """Turn a raw value into registers in the device's order (writes, tests, sandbox).

    Strings are Latin-1, padded with NULs to `length` registers. `bool` (a bit of
    a register) cannot be encoded alone: writing one bit would need the rest of
    the register.
    """
    if data_type == "bool":
        raise CodecError("a single bit of a register cannot be encoded on its own")
    if data_type == "string":
        count = register_count("string", length)
        if not isinstance(value, str):
            raise CodecError(f"string needs text, got {value!r}")
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            raise CodecError(f"{value!r} has characters outside Latin-1") from None
        if len(raw) > 2 * count:
            raise CodecError(f"{value!r} is {len(raw)} bytes; the tag holds {2 * count} "
                             f"({count} registers)")
        return _from_bytes(raw.ljust(2 * count, b"\x00"), "big", byte_order)
    register_count(data_type)  # unknown type -> CodecError
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CodecError(f"{data_type} needs a number, got {value!r}")
    if data_type in INTEGER_TYPES:
        if not isinstance(value, int):
            raise CodecError(f"{data_type} needs an integer, got {value!r}")
        lo, hi = integer_range(data_type)
        if not lo <= value <= hi:
            raise CodecError(f"{value} is out of range for {data_type} ({lo}..{hi})")
    elif not math.isfinite(value):
        raise CodecError(f"{data_type} value must be finite, got {value!r}")
    try:
        raw = struct.pack(">" + _FORMAT[data_type], value)
    except (struct.error, OverflowError) as exc:
        raise CodecError(f"{value!r} does not fit {data_type}: {exc}") from None
    return _from_bytes(raw, word_order, byte_order)


def scale_value(raw: int | float, scale: float = 1.0, offset: float = 0.0) -> int | float:
    """Engineering value `raw * scale + offset`; the integer itself when unscaled."""
    if scale == 1 and offset == 0:
        return raw
    return raw * scale + offset


def unscale_value(value: int | float, data_type: str, scale: float = 1.0,
                  offset: float = 0.0) -> int | float:
    """The raw value to write for engineering value `value` (inverse of `scale_value`).

    Integer types round a scaled value to the nearest step; an unscaled integer
    tag refuses a fractional value instead of silently dropping the fraction.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CodecError(f"{data_type} needs a number, got {value!r}")
    if not math.isfinite(value):
        raise CodecError(f"value must be finite, got {value!r}")
    if scale == 1 and offset == 0:
        if data_type in INTEGER_TYPES and isinstance(value, float):
            if not value.is_integer():
                raise CodecError(f"{value!r} is not an integer ({data_type} tag without scale)")
            return int(value)
        return value
    raw = (value - offset) / scale
    return round(raw) if data_type in INTEGER_TYPES else raw
