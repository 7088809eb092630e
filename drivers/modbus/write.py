"""Writing a value to a Modbus tag: the checks before anything goes on the wire.

This module owns the write errors and `prepare_write`, which refuses a write
to an unknown tag, a read-only table (discrete inputs, input registers), a tag
not marked `writable = true`, or a value of the wrong type or out of range,
and otherwise turns the engineering value into what goes on the wire: a bool
for a coil, or registers (the read codec in reverse, scale and offset undone)
for holding registers. Sending is the driver's job.
"""
from __future__ import annotations

from typing import Any

from drivers.base import Quality
from drivers.modbus.codec import CodecError, encode, unscale_value
from drivers.modbus.tags import READ_ONLY_FUNCTIONS, TagConfig


class ModbusWriteError(Exception):
    """A write to a Modbus tag did not happen."""


class WriteRefused(ModbusWriteError):
    """Refused before sending: unknown tag, read-only table, or a tag not marked writable."""


class WriteValueError(WriteRefused, ValueError):
    """Refused before sending: the value has the wrong type or does not fit the tag."""


class WriteFailed(ModbusWriteError):
    """Sent (or tried to), but the line or the device failed; `quality` says how.

    `code` is the Modbus exception code when the device refused the write.
    """

    def __init__(self, message: str, quality: Quality, code: int | None = None) -> None:
        super().__init__(message)
        self.quality, self.code = quality, code


def prepare_write(device: str, name: str, tag: TagConfig | None, value: Any) -> bool | list[int]:
    """What to send for `value`: a bool for a coil, registers for holding registers."""
    if tag is None:
        raise WriteRefused(f"device {device}: no tag {name!r}")
    if tag.function in READ_ONLY_FUNCTIONS:
        table = "a discrete input" if tag.function == "discrete" else "an input register"
        raise WriteRefused(f"device {device}: tag {name} is read-only: {table} cannot be written")
    if not tag.writable:
        raise WriteRefused(f"device {device}: tag {name} is not writable; set writable = true in "
                           f"[devices.{device}.tags.{name}] to allow writes")
    if tag.function == "coil":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise WriteValueError(f"device {device}: tag {name}: a coil takes true or false, "
                              f"got {value!r}")
    if tag.bit is not None:  # the config refuses this too; a hand-made TagConfig might not
        raise WriteRefused(f"device {device}: tag {name} is one bit of a register and "
                           f"cannot be written on its own")
    try:
        if tag.type == "string":
            return encode(value, "string", byte_order=tag.byte_order, length=tag.length)
        raw = unscale_value(value, tag.type, tag.scale, tag.offset)
        return encode(raw, tag.type, tag.word_order, tag.byte_order)
    except CodecError as exc:
        raise WriteValueError(f"device {device}: tag {name}: cannot write {value!r}: "
                              f"{exc}") from None
