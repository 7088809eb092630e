"""One database row as tag samples, and the watermark as stored bytes.

This module owns the pure part of the SQL driver: a fetched row (key,
timestamp, mapped columns) becomes one sample per mapped column, with the
row's timestamp as `source_ts` (a `datetime` or ISO 8601 text, naive ones read
in the configured time zone, or epoch seconds). A cell that is NULL, not a
number, not finite or beyond a 64-bit integer gives a bad-quality sample whose
error names the table, the row's key and the column; the other cells of the
row are still good. The watermark (the last row's key, or its timestamp and
key) is kept in the database's own types, encoded as JSON for the StateStore.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Sequence
from zoneinfo import ZoneInfo

from drivers.base import Quality, Sample
from drivers.sql.config import SqlConfig

INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1


class CellError(ValueError):
    """A cell that is not a usable number or time."""


def row_samples(device: str, cfg: SqlConfig, row: Sequence[Any], now: float) -> list[Sample]:
    """One sample per mapped column of `row` = (key, timestamp, columns in tag order)."""
    key, raw_ts = row[0], row[1]
    where = f"table {cfg.table} key {cfg.key_column}={key!r}"
    try:
        ts = timestamp(raw_ts, cfg.zone)
        ts_error = None
    except CellError as exc:
        ts, ts_error = now, f"{where} column {cfg.timestamp_column!r}: {exc}"
    out = []
    for (tag, column), raw in zip(cfg.columns.items(), row[2:]):
        origin = f"{where} column {column!r}"
        if ts_error is not None:
            out.append(Sample(device, tag, None, Quality.BAD_CONFIG, ts, ts_error, origin))
            continue
        try:
            out.append(Sample(device, tag, number(raw), Quality.GOOD, ts, origin=origin))
        except CellError as exc:
            out.append(Sample(device, tag, None, Quality.BAD_CONFIG, ts, f"{origin}: {exc}", origin))
    return out


def number(raw: Any) -> int | float:
    """A cell as int (within 64 bits) or finite float; NULL, text, blobs are refused."""
    if raw is None:
        raise CellError("NULL")
    if isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, Decimal):
        if not raw.is_finite():
            raise CellError(f"not finite: {raw}")
        raw = int(raw) if raw == raw.to_integral_value() else float(raw)
    if isinstance(raw, int):
        if not INT_MIN <= raw <= INT_MAX:
            raise CellError(f"integer out of range (a 64-bit integer is {INT_MIN}..{INT_MAX}): {raw}")
        return raw
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise CellError(f"not finite: {raw}")
        return raw
    text = repr(raw) if len(repr(raw)) <= 60 else repr(raw)[:60] + "..."
    raise CellError(f"not a number: {text}")


def timestamp(raw: Any, zone: ZoneInfo) -> float:
    """UTC epoch seconds of a timestamp cell (datetime, ISO 8601 text or epoch number)."""
    if raw is None:
        raise CellError("NULL timestamp")
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        if not math.isfinite(raw):
            raise CellError(f"not finite: {raw}")
        return float(raw)
    if isinstance(raw, str):
        try:
            raw = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise CellError(f"not an ISO 8601 timestamp: {raw[:60]!r}") from None
    if isinstance(raw, datetime):
        if raw.tzinfo is None:
            raw = raw.replace(tzinfo=zone)
        return raw.timestamp()
    raise CellError(f"not a timestamp: {type(raw).__name__}")


def mark_of(cfg: SqlConfig, row: Sequence[Any]) -> tuple[Any, ...]:
    """The watermark after `row`: its key, or its (timestamp, key)."""
    return (row[0],) if cfg.watermark == "id" else (row[1], row[0])


def encode_mark(mark: Sequence[Any]) -> bytes:
    return json.dumps([_encode(v) for v in mark]).encode()


def decode_mark(raw: bytes) -> tuple[Any, ...]:
    return tuple(_decode(v) for v in json.loads(raw))


def _encode(value: Any) -> dict[str, Any]:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"a watermark cannot be {value!r}")
    if isinstance(value, int):
        return {"int": value}
    if isinstance(value, float):
        return {"float": value}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, str):
        return {"str": value}
    raise ValueError(f"a watermark cannot be of type {type(value).__name__}")


def _decode(item: dict[str, Any]) -> Any:
    [(kind, value)] = item.items()
    return {"int": int, "float": float, "decimal": Decimal, "str": str,
            "datetime": datetime.fromisoformat}[kind](value)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")
