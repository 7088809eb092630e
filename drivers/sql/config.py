"""The typed configuration of one SQL device: which database, which table, which columns.

This module owns parsing and validating a `[devices.<name>]` section whose
`type` is `sql` into a frozen dataclass, reporting every problem with its full
key path through `ConfigCollector`: the backend (`sqlite` file, `postgresql`
or `mariadb`), how to connect (MariaDB's `key=value` dsn is parsed here into
the client's arguments), the table or view polled, the watermark
(a monotonic `id` column, or a `timestamp` column with a tie-breaking key),
the column -> tag mapping, batch size, poll interval, query timeout and the
reconnect backoff. Table and column names are checked to be plain
identifiers, so they can be quoted into SQL safely. It opens no connection.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drivers.base import ConfigCollector

BACKENDS: tuple[str, ...] = ("sqlite", "postgresql", "mariadb")
#: the keys of a MariaDB dsn (libpq's words where libpq has one)
MARIADB_DSN_KEYS: tuple[str, ...] = ("host", "port", "dbname", "user", "unix_socket", "sslmode", "sslrootcert")
SSLMODES: tuple[str, ...] = ("disable", "prefer", "require", "verify-ca", "verify-full")
WATERMARKS: tuple[str, ...] = ("id", "timestamp")

_DEVICE_KEYS = {"type", "backend", "database", "dsn", "password_env", "table", "watermark",
                "key_column", "timestamp_column", "timezone", "columns", "batch_rows",
                "poll_interval", "query_timeout", "connect_timeout", "reconnect_initial",
                "reconnect_cap", "machine"}
#: `name` or `schema.name`, letters, digits and `_`: safe to quote into SQL
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TAG_NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class SqlConfig:
    """One polled table or view of a vendor database."""

    backend: str
    table: str
    key_column: str
    timestamp_column: str
    columns: dict[str, str]            # tag name -> column name, in tag order
    watermark: str = "id"
    database: str | None = None        # sqlite: the file
    dsn: str | None = field(default=None, repr=False)   # postgresql: libpq connection string; mariadb: key=value
    password_env: str | None = None    # read when connecting, never stored in the config
    timezone: str = "UTC"
    batch_rows: int = 500
    poll_interval: float = 2.0
    query_timeout: float = 10.0
    connect_timeout: float = 5.0
    reconnect_initial: float = 0.5
    reconnect_cap: float = 30.0
    machine: str | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def tag_names(self) -> tuple[str, ...]:
        return tuple(self.columns)


def quote(name: str, backend: str) -> str:
    """A checked identifier (`t` or `schema.t`) quoted for the backend.

    SQLite gets `[name]`: a double-quoted name that matches no column would
    silently be read as a string literal there. MariaDB gets backticks (double
    quotes are string literals unless the server runs with ANSI_QUOTES).
    """
    form = {"sqlite": "[{}]", "mariadb": "`{}`"}.get(backend, '"{}"')
    return ".".join(form.format(part) for part in name.split("."))


def _identifier(issues: ConfigCollector, key: str, value: Any, dotted: bool = False) -> bool:
    parts = value.split(".") if isinstance(value, str) and dotted else [value]
    if not isinstance(value, str) or len(parts) > 2 or \
            not all(isinstance(p, str) and _IDENT.fullmatch(p) for p in parts):
        issues.add(key, "must be a plain SQL name (letters, digits, '_'"
                        + (", optionally 'schema.name'" if dotted else "") + f"), got {value!r}")
        return False
    return True


def parse_device(section: dict[str, Any], path: str,
                 issues: ConfigCollector) -> SqlConfig | None:
    """Validate a device section; returns None when any problem was reported."""
    before = len(issues.issues)
    if not isinstance(section, dict):
        issues.add(path, f"must be a table, got {section!r}")
        return None
    issues.unknown_keys(section, path, _DEVICE_KEYS)
    issues.get(section, path, "type", str, choices=("sql",))
    backend = issues.get(section, path, "backend", str, required=True, choices=BACKENDS)
    database = issues.get(section, path, "database", str)
    dsn = issues.get(section, path, "dsn", str)
    password_env = issues.get(section, path, "password_env", str)
    if backend == "sqlite":
        if not database:
            issues.add(f"{path}.database", "is required for backend 'sqlite' (the database file)")
        if dsn is not None:
            issues.add(f"{path}.dsn", "is for backends 'postgresql' and 'mariadb'; sqlite uses 'database'")
    elif backend in ("postgresql", "mariadb"):
        if dsn is None:
            example = ("host=db1 port=5432 dbname=mes user=linebridge_ro" if backend == "postgresql"
                       else "host=db1 port=3306 dbname=mes user=linebridge_ro")
            issues.add(f"{path}.dsn", f"is required for backend {backend!r} (e.g. {example!r})")
        if database is not None:
            issues.add(f"{path}.database", f"is for backend 'sqlite'; {backend} uses 'dsn'")
        if password_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", password_env):
            issues.add(f"{path}.password_env", f"must be an environment variable name, got {password_env!r}")
        if dsn is not None and re.search(r"(^|\s)password\s*=", dsn):
            issues.add(f"{path}.dsn", "must not hold the password; use password_env")
        elif dsn is not None and backend == "mariadb":
            mariadb_dsn(dsn, f"{path}.dsn", issues)
    table = issues.get(section, path, "table", str, required=True)
    if table is not None:
        _identifier(issues, f"{path}.table", table, dotted=True)
    watermark = issues.get(section, path, "watermark", str, default="id", choices=WATERMARKS)
    key_column = issues.get(section, path, "key_column", str, required=True)
    if key_column is not None:
        _identifier(issues, f"{path}.key_column", key_column)
    timestamp_column = issues.get(section, path, "timestamp_column", str, required=True)
    if timestamp_column is not None:
        _identifier(issues, f"{path}.timestamp_column", timestamp_column)
    if watermark == "timestamp" and key_column is not None and key_column == timestamp_column:
        issues.add(f"{path}.key_column", "must differ from timestamp_column: it breaks ties "
                                         "between rows with the same time")
    timezone = issues.get(section, path, "timezone", str, default="UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        issues.add(f"{path}.timezone", f"unknown time zone {timezone!r}")
    columns = _columns(issues, section, path)
    batch_rows = issues.get(section, path, "batch_rows", int, default=500, minimum=1, maximum=100_000)
    numbers = {key: _number(issues, section, path, key, default) for key, default in (
        ("poll_interval", 2.0), ("query_timeout", 10.0), ("connect_timeout", 5.0),
        ("reconnect_initial", 0.5), ("reconnect_cap", 30.0))}
    machine = issues.get(section, path, "machine", str)
    if len(issues.issues) > before:
        return None
    return SqlConfig(backend=backend, database=database, dsn=dsn, password_env=password_env, table=table,
                     watermark=watermark, key_column=key_column,
                     timestamp_column=timestamp_column, timezone=timezone, columns=columns,
                     batch_rows=batch_rows, machine=machine, **numbers)


def _columns(issues: ConfigCollector, section: dict[str, Any], path: str) -> dict[str, str]:
    raw = issues.get(section, path, "columns", dict, required=True)
    if raw is None:
        return {}
    if not raw:
        issues.add(f"{path}.columns", "must map at least one tag to a column")
    columns: dict[str, str] = {}
    for tag, column in raw.items():
        key = f"{path}.columns.{tag}"
        if not _TAG_NAME.fullmatch(tag):
            issues.add(key, "tag names may use only letters, digits, '_' and '-'")
        elif _identifier(issues, key, column):
            columns[tag] = column
    return columns


def _number(issues: ConfigCollector, section: dict[str, Any], path: str, key: str,
            default: float) -> float:
    value = issues.get(section, path, key, float, default=default)
    if not math.isfinite(value) or value <= 0:
        issues.add(f"{path}.{key}", f"must be a number > 0, got {value!r}")
        return default
    return value


def mariadb_dsn(dsn: str, path: str, issues: ConfigCollector | None = None) -> dict[str, str]:
    """A MariaDB dsn (`host=db1 port=3306 dbname=mes user=ro sslmode=require`) as a dict.

    Space-separated `key=value` pairs with libpq's key names (values without
    spaces). Problems go to `issues` (or raise ValueError when there is none).
    """
    problems: list[str] = []
    out: dict[str, str] = {}
    for part in dsn.split():
        key, eq, value = part.partition("=")
        if not eq or not value:
            problems.append(f"expected key=value pairs separated by spaces, got {part!r}")
        elif key not in MARIADB_DSN_KEYS:
            problems.append(f"unknown key {key!r} (allowed: {', '.join(MARIADB_DSN_KEYS)})")
        else:
            out[key] = value
    if "port" in out and not (out["port"].isdigit() and 0 < int(out["port"]) < 65536):
        problems.append(f"port must be 1..65535, got {out['port']!r}")
    if "sslmode" in out and out["sslmode"] not in SSLMODES:
        problems.append(f"sslmode must be one of {', '.join(SSLMODES)}, got {out['sslmode']!r}")
    if out.get("sslmode") in ("verify-ca", "verify-full") and "sslrootcert" not in out:
        problems.append(f"sslmode={out['sslmode']} needs sslrootcert (the CA file)")
    if "unix_socket" in out and "host" in out:
        problems.append("give either host or unix_socket, not both")
    if "user" not in out:
        problems.append("user is required (a read-only database user)")
    for problem in problems:
        if issues is None:
            raise ValueError(problem)
        issues.add(path, problem)
    return out
