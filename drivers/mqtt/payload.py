"""Turning one MQTT payload into field values: decoding, dotted paths, strict types, timestamps.

This module owns the pure part of the MQTT driver: decoding a payload as JSON
or as raw UTF-8 text, walking a dotted path (`counters.good`, `axes.0.load`)
into the decoded document, converting a value to the field's declared type
with strict rules (no guessing: `"12abc"` is not an int, `3.5` is not an int,
`2` is not a bool, an integer is a signed 64-bit one: `99999999999999999999999`
is refused, never masked), and reading a source timestamp (epoch seconds or
milliseconds, or ISO 8601). `map_message` applies a topic's mapping to one
payload and returns one `Sample` per field plus the problems found, never
inventing a value: a field that cannot be read gets `bad_config` and None. It
knows nothing about connections, logging or health figures.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence

from drivers.base import Quality, Sample

FIELD_TYPES: tuple[str, ...] = ("int", "float", "bool", "str")
TIMESTAMP_UNITS: tuple[str, ...] = ("auto", "s", "ms")
#: payloads larger than this are refused without decoding
MAX_PAYLOAD_BYTES = 1 << 20
#: in `auto` unit, epoch numbers above this are milliseconds (1e11 s is the year 5138)
_MS_THRESHOLD = 1e11

_INT_TEXT = re.compile(r"[+-]?\d+")
#: an integer field is a signed 64-bit integer, typed or not
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
#: timestamps must fall in years 1970..9999 (what an event's UTC time can show)
_MAX_EPOCH = 253402300799.0
_FLOAT_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE = frozenset({"true", "1", "on"})
_FALSE = frozenset({"false", "0", "off"})


class PayloadError(ValueError):
    """The payload as a whole cannot be decoded (not JSON, not UTF-8, too large)."""


class FieldError(ValueError):
    """One field cannot be read from a decoded payload (missing path, wrong type)."""


def path_problem(text: str) -> str | None:
    """Why `text` is not a valid dotted path, or None. The empty path is the whole payload."""
    if text == "":
        return None
    if any(part == "" for part in text.split(".")):
        return "must be dot-separated keys or list indexes without empty parts (as in 'counters.good')"
    return None


def split_path(text: str) -> tuple[str, ...]:
    return tuple(text.split(".")) if text else ()


def decode_payload(payload: bytes, fmt: str) -> Any:
    """The document a payload holds: parsed JSON, or the stripped text for `raw`."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES} bytes")
    if fmt == "raw":
        try:
            return payload.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise PayloadError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        return json.loads(payload, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"not valid JSON: {exc.msg} at line {exc.lineno} "
                           f"column {exc.colno} ({_preview(payload)})") from None
    except UnicodeDecodeError as exc:
        raise PayloadError(f"not valid JSON: not UTF-8 text ({exc.reason} at byte "
                           f"{exc.start})") from None
    except RecursionError:
        raise PayloadError("not valid JSON: nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity refused by _refuse_constant
        raise PayloadError(f"not valid JSON: {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _preview(payload: bytes, limit: int = 40) -> str:
    text = payload[:limit].decode("utf-8", "replace")
    return f"starts with {text!r}" if len(payload) > limit else f"payload {text!r}"


def lookup(document: Any, path: Sequence[str]) -> Any:
    """The value at `path` in a decoded JSON document; FieldError naming where it stops."""
    current = document
    walked: list[str] = []
    for part in path:
        where = ".".join(walked) or "the payload"
        if isinstance(current, dict):
            if part not in current:
                raise FieldError(f"no key {part!r} in {where}")
            current = current[part]
        elif isinstance(current, list):
            if not part.isdigit():
                raise FieldError(f"{where} is a list, {part!r} is not an index")
            index = int(part)
            if index >= len(current):
                raise FieldError(f"{where} has {len(current)} item(s), no index {index}")
            current = current[index]
        else:
            raise FieldError(f"{where} is {_describe(current)}, cannot look up {part!r}")
        walked.append(part)
    return current


def convert(value: Any, kind: str | None) -> Any:
    """`value` as the declared type, or unchanged (a JSON leaf) when no type is declared."""
    if value is None:
        raise FieldError("value is null")
    if kind is None:
        if isinstance(value, (dict, list)):
            raise FieldError(f"value is {_describe(value)}, map a single value (a deeper path)")
        if isinstance(value, float) and not math.isfinite(value):
            raise FieldError(f"value {value!r} is not a finite number")
        if isinstance(value, int) and not isinstance(value, bool):
            return _in_range(value)
        return value
    if kind == "int":
        return _to_int(value)
    if kind == "float":
        return _to_float(value)
    if kind == "bool":
        return _to_bool(value)
    if kind == "str":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return json.dumps(value)
        raise FieldError(f"expected str, got {_describe(value)}")
    raise FieldError(f"unknown type {kind!r}")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise FieldError(f"expected int, got {_describe(value)}")
    if isinstance(value, int):
        return _in_range(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return _in_range(int(value))
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        text = value.strip()
        if len(text.lstrip("+-").lstrip("0")) > 19:
            raise FieldError(f"integer out of range (a 64-bit integer is {INT_MIN}..{INT_MAX}), "
                             f"got {_describe(value)}")
        return _in_range(int(text))
    raise FieldError(f"expected int, got {_describe(value)}")


def _in_range(value: int) -> int:
    if not INT_MIN <= value <= INT_MAX:
        raise FieldError(f"integer out of range (a 64-bit integer is {INT_MIN}..{INT_MAX}), "
                         f"got {_describe(value)}")
    return value


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise FieldError(f"expected float, got {_describe(value)}")
    if isinstance(value, (int, float)):
        try:
            result = float(value)
        except OverflowError:
            raise FieldError(f"expected a finite float, got {_describe(value)}") from None
    elif isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        result = float(value.strip())
    else:
        raise FieldError(f"expected float, got {_describe(value)}")
    if not math.isfinite(result):
        raise FieldError(f"expected a finite float, got {_describe(value)}")
    return result


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise FieldError(f"expected bool (true/false, 1/0, on/off), got {_describe(value)}")


def parse_timestamp(value: Any, unit: str = "auto") -> float:
    """UTC epoch seconds from epoch seconds/milliseconds or an ISO 8601 string."""
    if isinstance(value, bool) or value is None:
        raise FieldError(f"timestamp must be epoch seconds/ms or ISO 8601, got {_describe(value)}")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise FieldError(f"timestamp {_describe(value)} is not a time") from None
        if not math.isfinite(number) or number < 0:
            raise FieldError(f"timestamp {_describe(value)} is not a time")
        if unit == "ms" or (unit == "auto" and number > _MS_THRESHOLD):
            number /= 1000.0
        if number > _MAX_EPOCH:
            raise FieldError(f"timestamp {_describe(value)} is after the year 9999")
        return number
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise FieldError(f"timestamp {value!r} is not ISO 8601") from None
        if parsed.tzinfo is None:  # no offset given: the machine's clock is taken as UTC
            parsed = parsed.replace(tzinfo=timezone.utc)
        stamp = parsed.timestamp()
        if not 0 <= stamp <= _MAX_EPOCH:
            raise FieldError(f"timestamp {_describe(value)} is outside 1970..9999 UTC")
        return stamp
    raise FieldError(f"timestamp must be epoch seconds/ms or ISO 8601, got {_describe(value)}")


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class FieldMapping:
    """Where one field's value is in a payload and what type it must have."""

    name: str
    path: tuple[str, ...] = ()
    type: str | None = None

    @property
    def path_text(self) -> str:
        return ".".join(self.path)


@dataclass
class MappedMessage:
    """The samples of one message and what went wrong reading it."""

    samples: list[Sample]
    #: a problem with the payload as a whole (every field is bad), or None
    payload_error: str | None = None
    #: field name -> problem, for fields that could not be read
    field_errors: dict[str, str] = field(default_factory=dict)


def map_message(device: str, topic: str, payload: bytes, fmt: str,
                fields: Sequence[FieldMapping], received: float,
                timestamp_path: tuple[str, ...] | None = None,
                timestamp_unit: str = "auto") -> MappedMessage:
    """One sample per field, in the given order; bad fields get `bad_config` and None."""
    try:
        document = decode_payload(payload, fmt)
    except PayloadError as exc:
        return _all_bad(device, topic, fields, received, str(exc))
    ts = received
    if timestamp_path is not None:
        try:
            ts = parse_timestamp(lookup(document, timestamp_path), timestamp_unit)
        except FieldError as exc:
            return _all_bad(device, topic, fields, received,
                            f"timestamp field {'.'.join(timestamp_path)}: {exc}")
    result = MappedMessage(samples=[])
    for mapping in fields:
        try:
            value = convert(lookup(document, mapping.path), mapping.type)
        except FieldError as exc:
            reason = f"path {mapping.path_text!r}: {exc}" if mapping.path else str(exc)
            result.field_errors[mapping.name] = reason
            result.samples.append(Sample(device, mapping.name, None, Quality.BAD_CONFIG, ts,
                                         _error(device, topic, mapping.name, reason)))
            continue
        result.samples.append(Sample(device, mapping.name, value, Quality.GOOD, ts,
                                     origin=f"topic {topic} field {mapping.path_text or '(the payload)'}"))
    return result


def _all_bad(device: str, topic: str, fields: Sequence[FieldMapping], ts: float,
             reason: str) -> MappedMessage:
    samples = [Sample(device, f.name, None, Quality.BAD_CONFIG, ts,
                      _error(device, topic, f.name, reason)) for f in fields]
    return MappedMessage(samples=samples, payload_error=reason)


def _error(device: str, topic: str, field_name: str, reason: str) -> str:
    return f"device {device}: topic {topic}: field {field_name}: {reason}"
