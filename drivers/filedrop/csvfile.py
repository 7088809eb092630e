"""Reading one CSV export into rows of typed tag values, all or nothing.

This module owns turning the bytes of one file into `Row`s: decoding, the CSV
dialect, finding the mapped columns in the header, converting each cell to
its tag's type (int: a whole number within 64 bits; float with a `.` or `,`
decimal mark, finite; str) and the
timestamp column to UTC epoch seconds (strptime or ISO 8601; naive times in
the configured time zone, with times that do not exist in it refused). The
first problem anywhere makes the whole file bad: `BadFile` names the row,
column and value. It is pure: no file system, no state, no samples.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from drivers.filedrop.config import FileDropConfig

_INT = re.compile(r"[+-]?\d+")
#: an `int` cell is a signed 64-bit integer: no machine counts beyond it, and no digit string is masked
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class Row:
    """One data row: its number (the header is row 1), source time and typed values."""

    number: int
    ts: float
    values: dict[str, Any]   # tag -> value, in the configured tag order


class BadFile(Exception):
    """The file cannot be taken; says where (row, line, column) and what (value, reason)."""

    def __init__(self, reason: str, row: int | None = None, column: str | None = None,
                 value: str | None = None, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.row, self.column, self.value, self.line = (reason, row, column,
                                                                     value, line)

    def where(self) -> str:
        """`row 4 (line 4) column 'qty' value 'abc'` - as much as is known."""
        parts = []
        if self.row is not None:
            parts.append(f"row {self.row}" + (f" (line {self.line})"
                                              if self.line not in (None, self.row) else ""))
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        if self.value is not None:
            parts.append(f"value {_short(self.value)!r}")
        return " ".join(parts)

    def __str__(self) -> str:
        where = self.where()
        return f"{where}: {self.reason}" if where else self.reason


class CellError(ValueError):
    """One cell that does not convert to its tag's type."""


def read_rows(data: bytes, cfg: FileDropConfig) -> list[Row]:
    """Every data row of the file, or `BadFile` for the first problem found."""
    if not data.strip():
        raise BadFile("empty file")
    text = _decode(data, cfg.encoding)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=cfg.delimiter, strict=True)
    zone = cfg.zone
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise BadFile("empty file" if header is None else "the first row (the header) is empty",
                          row=1)
        index = _header_index([h.strip() for h in header], cfg)
        ts_index = index[cfg.timestamp_column]
        rows: list[Row] = []
        number = 1
        for fields in reader:
            number += 1
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line (often the last one)
            if len(fields) != len(header):
                raise BadFile(f"expected {len(header)} fields like the header, got {len(fields)}",
                              row=number, line=reader.line_num)
            raw_ts = fields[ts_index]
            try:
                ts = parse_timestamp(raw_ts, cfg.timestamp_format, zone)
            except CellError as exc:
                raise BadFile(str(exc), row=number, column=cfg.timestamp_column, value=raw_ts,
                              line=reader.line_num) from None
            values: dict[str, Any] = {}
            for tag, column in cfg.columns.items():
                raw = fields[index[column]]
                try:
                    values[tag] = convert(raw, cfg.type_of(tag), cfg.decimal)
                except CellError as exc:
                    raise BadFile(f"{exc} (tag {tag!r})", row=number, column=column, value=raw,
                                  line=reader.line_num) from None
            rows.append(Row(number, ts, values))
    except csv.Error as exc:
        raise BadFile(f"malformed CSV: {exc}", row=None, line=reader.line_num) from None
    return rows


def _decode(data: bytes, encoding: str) -> str:
    if encoding.replace("_", "-").lower() in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # Excel writes a byte order mark
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise BadFile(f"not valid {encoding.removesuffix('-sig')} "
                      f"(byte 0x{data[exc.start]:02x} at offset {exc.start})",
                      row=line, line=line) from None


def _header_index(header: list[str], cfg: FileDropConfig) -> dict[str, int]:
    index: dict[str, int] = {}
    wanted: list[tuple[str | None, str]] = list(cfg.columns.items())
    wanted.append((None, cfg.timestamp_column))
    for tag, column in wanted:
        positions = [i for i, h in enumerate(header) if h == column]
        if not positions:
            what = "the timestamp column" if tag is None else f"mapped to tag {tag!r}"
            raise BadFile(f"the header has no column {column!r} ({what}); "
                          f"it has {', '.join(map(repr, header))}", row=1, column=column)
        if len(positions) > 1:
            raise BadFile(f"the header has column {column!r} {len(positions)} times",
                          row=1, column=column)
        index[column] = positions[0]
    return index


def convert(raw: str, kind: str, decimal: str = ".") -> Any:
    """A cell as `int`, `float` or `str` (str is kept exactly as written)."""
    if kind == "str":
        return raw
    text = raw.strip()
    if not text:
        raise CellError(f"empty, expected {'an integer' if kind == 'int' else 'a number'}")
    if kind == "int":
        if not _INT.fullmatch(text):
            raise CellError("not an integer")
        if len(text.lstrip("+-").lstrip("0")) > 19:
            raise CellError(f"integer out of range (a 64-bit integer is {INT_MIN}..{INT_MAX})")
        number = int(text)
        if not INT_MIN <= number <= INT_MAX:
            raise CellError(f"integer out of range (a 64-bit integer is {INT_MIN}..{INT_MAX})")
        return number
    if decimal == ",":
        if "." in text:
            raise CellError("not a number (the decimal mark is ',')")
        text = text.replace(",", ".")
    if not _FLOAT.fullmatch(text):
        raise CellError("not a number")
    value = float(text)
    if not math.isfinite(value):
        raise CellError("number out of range")
    return value


def parse_timestamp(raw: str, fmt: str | None, zone: ZoneInfo) -> float:
    """UTC epoch seconds of a timestamp cell; naive times are read in `zone`.

    A naive time that falls twice in `zone` (the hour repeated when summer time
    ends) is taken as the first of the two; one that does not exist (the hour
    skipped when summer time starts) is refused.
    """
    text = raw.strip()
    if not text:
        raise CellError("empty timestamp")
    try:
        dt = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
    except ValueError:
        raise CellError(f"timestamp does not match {fmt!r}" if fmt
                        else "not an ISO 8601 timestamp") from None
    if dt.tzinfo is None:
        local = dt.replace(tzinfo=zone, fold=0)
        back = local.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None)
        if back != dt:
            raise CellError(f"this local time does not exist in {zone.key} "
                            "(skipped by the clock change)")
        dt = local
    return dt.timestamp()


def _short(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[:limit] + "..."
