"""The typed configuration of one file-drop device (a folder of CSV exports).

This module owns parsing and validating a `[devices.<name>]` section whose
`type` is `filedrop` into a frozen dataclass, reporting every problem with its
full key path through `ConfigCollector`: the watched directory and which files
to take, how long a file must stay unchanged, the CSV dialect and encoding,
the column -> tag mapping with each tag's type, and how to read the timestamp
column (strptime format and time zone). It does not touch the file system.
"""
from __future__ import annotations

import codecs
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drivers.base import ConfigCollector

TYPES: tuple[str, ...] = ("int", "float", "str")
DEFAULT_IGNORE: tuple[str, ...] = ("*.tmp", "*.part", "*.partial", ".*", "~*")
PROCESSED_DIR = "processed"
QUARANTINE_DIR = "quarantine"

_DEVICE_KEYS = {"type", "directory", "pattern", "ignore", "stable_seconds", "poll_interval",
                "delimiter", "encoding", "decimal", "columns", "types", "timestamp_column",
                "timestamp_format", "timezone", "max_file_mb", "machine"}
_TAG_NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class FileDropConfig:
    """One watched folder: which files, how to read them, which columns become tags."""

    directory: str
    columns: dict[str, str]            # tag name -> header name, in tag order
    timestamp_column: str
    types: dict[str, str] = field(default_factory=dict)  # tag -> int | float | str
    pattern: str = "*.csv"
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    stable_seconds: float = 5.0
    poll_interval: float = 2.0
    delimiter: str = ","
    encoding: str = "utf-8"
    decimal: str = "."
    timestamp_format: str | None = None   # None: ISO 8601
    timezone: str = "UTC"
    max_file_mb: float = 50.0
    machine: str | None = None

    def type_of(self, tag: str) -> str:
        return self.types.get(tag, "str")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    @property
    def tag_names(self) -> tuple[str, ...]:
        """The tags each row yields (rules refer to them)."""
        return tuple(self.columns)


def parse_device(section: dict[str, Any], path: str,
                 issues: ConfigCollector) -> FileDropConfig | None:
    """Validate a device section; returns None when any problem was reported."""
    before = len(issues.issues)
    if not isinstance(section, dict):
        issues.add(path, f"must be a table, got {section!r}")
        return None
    issues.unknown_keys(section, path, _DEVICE_KEYS)
    issues.get(section, path, "type", str, choices=("filedrop",))
    directory = issues.get(section, path, "directory", str, required=True)
    if isinstance(directory, str) and not directory.strip():
        issues.add(f"{path}.directory", "must not be empty")
    pattern = issues.get(section, path, "pattern", str, default="*.csv")
    if not pattern or "/" in pattern:
        issues.add(f"{path}.pattern", f"must be a file name pattern without '/', got {pattern!r}")
    ignore = _ignore(issues, section, path)
    stable_seconds = _number(issues, section, path, "stable_seconds", 5.0, allow_zero=True)
    poll_interval = _number(issues, section, path, "poll_interval", 2.0)
    delimiter = issues.get(section, path, "delimiter", str, default=",")
    if len(delimiter) != 1 or delimiter in "\r\n\"":
        issues.add(f"{path}.delimiter", f"must be one character (not a quote or a line break), "
                                        f"got {delimiter!r}")
    encoding = issues.get(section, path, "encoding", str, default="utf-8")
    try:
        codecs.lookup(encoding)
    except LookupError:
        issues.add(f"{path}.encoding", f"unknown encoding {encoding!r}")
    decimal = issues.get(section, path, "decimal", str, default=".", choices=(".", ","))
    if decimal == "," and delimiter == ",":
        issues.add(f"{path}.decimal", "a decimal comma needs another delimiter (e.g. ';')")
    columns = _columns(issues, section, path)
    types = _types(issues, section, path, columns)
    timestamp_column = issues.get(section, path, "timestamp_column", str, required=True)
    if isinstance(timestamp_column, str) and not timestamp_column.strip():
        issues.add(f"{path}.timestamp_column", "must not be empty")
    timestamp_format = issues.get(section, path, "timestamp_format", str)
    if timestamp_format is not None:
        _check_format(issues, f"{path}.timestamp_format", timestamp_format)
    timezone = issues.get(section, path, "timezone", str, default="UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        issues.add(f"{path}.timezone", f"unknown time zone {timezone!r} "
                                       "(an IANA name such as 'Europe/Berlin' or 'UTC')")
    max_file_mb = _number(issues, section, path, "max_file_mb", 50.0)
    machine = issues.get(section, path, "machine", str)
    if len(issues.issues) > before:
        return None
    return FileDropConfig(directory=directory, columns=columns, types=types,
                          timestamp_column=timestamp_column.strip(), pattern=pattern,
                          ignore=ignore, stable_seconds=stable_seconds,
                          poll_interval=poll_interval, delimiter=delimiter, encoding=encoding,
                          decimal=decimal, timestamp_format=timestamp_format,
                          timezone=timezone, max_file_mb=max_file_mb, machine=machine)


def _ignore(issues: ConfigCollector, section: dict[str, Any], path: str) -> tuple[str, ...]:
    raw = issues.get(section, path, "ignore", list, default=list(DEFAULT_IGNORE))
    out: list[str] = []
    for i, item in enumerate(raw):
        if not isinstance(item, str) or not item:
            issues.add(f"{path}.ignore[{i}]", f"must be a file name pattern, got {item!r}")
            continue
        out.append(item)
    return tuple(out)


def _columns(issues: ConfigCollector, section: dict[str, Any], path: str) -> dict[str, str]:
    raw = issues.get(section, path, "columns", dict, required=True)
    if raw is None:
        return {}
    if not raw:
        issues.add(f"{path}.columns", "must map at least one tag to a column")
    columns: dict[str, str] = {}
    for tag, header in raw.items():
        tag_path = f"{path}.columns.{tag}"
        if not _TAG_NAME.fullmatch(tag):
            issues.add(tag_path, "tag names may use only letters, digits, '_' and '-'")
        elif not isinstance(header, str) or not header.strip():
            issues.add(tag_path, f"must be the column's header name, got {header!r}")
        else:
            columns[tag] = header.strip()
    return columns


def _types(issues: ConfigCollector, section: dict[str, Any], path: str,
           columns: dict[str, str]) -> dict[str, str]:
    raw = issues.get(section, path, "types", dict, default={})
    types: dict[str, str] = {}
    for tag, kind in raw.items():
        if tag not in columns:
            issues.add(f"{path}.types.{tag}", f"tag {tag!r} is not in columns")
            continue
        value = issues.get(raw, f"{path}.types", tag, str, choices=TYPES)
        if value is not None:
            types[tag] = value
    return types


def _check_format(issues: ConfigCollector, key: str, fmt: str) -> None:
    if "%" not in fmt:
        issues.add(key, f"must be a strptime format such as '%d.%m.%Y %H:%M:%S', got {fmt!r}")
        return
    sample = datetime(2024, 11, 28, 13, 45, 30, tzinfo=dt_timezone.utc)
    try:
        datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError as exc:
        issues.add(key, f"is not a usable strptime format: {exc}")


def _number(issues: ConfigCollector, section: dict[str, Any], path: str, key: str,
            default: float, allow_zero: bool = False) -> float:
    value = issues.get(section, path, key, float, default=default)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        issues.add(f"{path}.{key}", f"must be a number {'>=' if allow_zero else '>'} 0, "
                                    f"got {value!r}")
        return default
    return value
