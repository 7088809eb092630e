"""Register decoding for the Modbus driver: 16-bit registers <-> integers.

This module owns the data types a tag can have (`uint16`, `int16`, `uint32`,
`int32`), how many registers each occupies, the word order of 32-bit values,
and scaling. Bytes inside one register are always big-endian, as the Modbus
protocol defines; only the order of the two words of a 32-bit value varies by
device. It decodes with `struct` and does not depend on pymodbus payload
helpers, which change between pymodbus versions. It knows nothing about
connections or requests.
"""
from __future__ import annotations

import struct
from typing import Sequence

#: registers occupied by each data type
REGISTER_COUNT: dict[str, int] = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2}

#: struct format of each data type, big-endian over the (ordered) words
_FORMAT: dict[str, str] = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i"}

DATA_TYPES: tuple[str, ...] = tuple(REGISTER_COUNT)
WORD_ORDERS: tuple[str, ...] = ("big", "little")


class CodecError(ValueError):
    """Registers or a value that cannot be converted for the given type."""


def register_count(data_type: str) -> int:
    """How many 16-bit registers a value of `data_type` occupies."""
    try:
        return REGISTER_COUNT[data_type]
    except KeyError:
        raise CodecError(f"unknown data type {data_type!r}") from None


def _ordered(words: Sequence[int], word_order: str) -> list[int]:
    if word_order == "big":
        return list(words)
    if word_order == "little":
        return list(reversed(words))
    raise CodecError(f"unknown word order {word_order!r}")


def decode(registers: Sequence[int], data_type: str, word_order: str = "big") -> int:
    """Turn the registers of one tag into its raw integer value.

    `registers` must hold exactly `register_count(data_type)` values, each 0..65535,
    in the order the device sent them.
    """
    count = register_count(data_type)
    if len(registers) != count:
        raise CodecError(f"{data_type} needs {count} register(s), got {len(registers)}")
    for reg in registers:
        if not 0 <= reg <= 0xFFFF:
            raise CodecError(f"register value out of range: {reg}")
    raw = struct.pack(f">{count}H", *_ordered(registers, word_order))
    return struct.unpack(_FORMAT[data_type], raw)[0]


def encode(value: int, data_type: str, word_order: str = "big") -> list[int]:
    """Turn a raw integer into registers as a device would serve it (tests, sandbox)."""
    count = register_count(data_type)
    try:
        raw = struct.pack(_FORMAT[data_type], value)
    except struct.error as exc:
        raise CodecError(f"{value!r} does not fit {data_type}: {exc}") from None
    return _ordered(list(struct.unpack(f">{count}H", raw)), word_order)


def scale_value(raw: int, scale: float = 1.0, offset: float = 0.0) -> int | float:
    """Engineering value `raw * scale + offset`; the integer itself when unscaled."""
    if scale == 1 and offset == 0:
        return raw
    return raw * scale + offset
