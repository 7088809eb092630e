"""The MariaDB side of the SQL driver: a read-only, time-bounded PyMySQL connection.

This module owns what is particular to MariaDB (and the MySQL protocol) for
`source.Source`: connecting with PyMySQL (the `sql-mariadb` extra) from the
parsed `key=value` dsn, with a connect timeout, socket read/write timeouts,
TLS as `sslmode` asks, a read-only session (`SET SESSION TRANSACTION READ
ONLY`), the server-side `max_statement_time` and the session time zone UTC; one
query in its own transaction (TIMESTAMP cells come back as aware UTC
datetimes, DATETIME cells naive, read later in the device's time zone); server
errors as sentences for a person; and the grants part of the connection test
(a user that may also write is warned about). Blocking calls only; it keeps no
state.
"""
from __future__ import annotations

import os
import re
import ssl
from datetime import datetime, timezone
from typing import Any

from drivers.sql.config import SqlConfig, mariadb_dsn

#: MariaDB error codes the driver names
ER_TABLEACCESS_DENIED, ER_COLUMNACCESS_DENIED = 1142, 1143
ER_NO_SUCH_TABLE, ER_STATEMENT_TIMEOUT = 1146, 1969
ER_DBACCESS_DENIED = 1044    # no grant at all in the dsn's database: the connect fails
#: table privileges that let a user change the table
WRITES = ("INSERT", "UPDATE", "DELETE", "DROP", "ALTER")


class MariaDbError(Exception):
    """Raised for a missing library or password; `source` turns it into a SourceError."""


def connect(cfg: SqlConfig) -> Any:
    """An open PyMySQL connection, read-only, UTC, with server- and client-side timeouts."""
    try:
        import pymysql
    except ImportError:
        raise MariaDbError("backend 'mariadb' needs PyMySQL: "
                           "pip install 'linebridge[sql-mariadb]'") from None
    dsn = mariadb_dsn(cfg.dsn or "", "dsn")
    kwargs: dict[str, Any] = {
        "user": dsn["user"], "database": dsn.get("dbname"),
        "connect_timeout": cfg.connect_timeout,
        # the socket's own bound, past the server's max_statement_time
        "read_timeout": cfg.query_timeout + cfg.connect_timeout, "write_timeout": cfg.connect_timeout,
        "charset": "utf8mb4", "autocommit": False, "program_name": "linebridge",
        "init_command": (f"SET SESSION max_statement_time = {cfg.query_timeout:.3f}, "
                         "time_zone = '+00:00'"),
    }
    if "unix_socket" in dsn:
        kwargs["unix_socket"] = dsn["unix_socket"]
    else:
        kwargs["host"] = dsn.get("host", "localhost")
        kwargs["port"] = int(dsn.get("port", "3306"))
    kwargs.update(_tls(dsn))
    if cfg.password_env is not None:
        password = os.environ.get(cfg.password_env)
        if password is None:
            raise MariaDbError(f"environment variable {cfg.password_env} (password_env) is not set")
        kwargs["password"] = password
    try:
        conn = pymysql.connect(**kwargs)
        with conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION READ ONLY")
    except pymysql.MySQLError as exc:
        who = re.search(r"user ('[^']*'@'[^']*')", _text(exc))
        if code(exc) == ER_DBACCESS_DENIED and who:
            raise MariaDbError(lacks_select(who.group(1), cfg)) from None
        raise MariaDbError(f"cannot connect: {_text(exc)}") from None
    return conn


def lacks_select(who: str, cfg: SqlConfig) -> str:
    """The connection test's sentence for a user without the SELECT grant, with the GRANT to run."""
    dbname = mariadb_dsn(cfg.dsn or "", "dsn").get("dbname")
    table = cfg.table if "." in cfg.table or not dbname else f"{dbname}.{cfg.table}"
    return f"user {who} lacks the SELECT grant on {cfg.table} (GRANT SELECT ON {table} TO {who})"


def _tls(dsn: dict[str, str]) -> dict[str, Any]:
    """PyMySQL's TLS arguments for libpq's `sslmode` (default `prefer`: TLS when the server offers it)."""
    mode = dsn.get("sslmode", "prefer")
    if mode == "disable":
        return {"ssl_disabled": True}
    if mode == "prefer":
        return {}    # PyMySQL 1.2.4: TLS without verification when offered, else plain
    ctx = ssl.create_default_context(cafile=dsn.get("sslrootcert"))
    ctx.check_hostname = mode == "verify-full"
    if mode == "require":
        ctx.verify_mode = ssl.CERT_NONE
    return {"ssl": ctx}


def query(conn: Any, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
    """The rows of one query, in a transaction of its own (the next poll sees new rows)."""
    from pymysql.constants import FIELD_TYPE
    with conn.cursor() as cur:
        cur.execute(sql, args)
        utc = [i for i, d in enumerate(cur.description or ()) if d[1] == FIELD_TYPE.TIMESTAMP]
        rows = [tuple(r) for r in cur.fetchall()]
    conn.rollback()
    if utc:
        rows = [tuple(v.replace(tzinfo=timezone.utc) if i in utc and isinstance(v, datetime) else v
                      for i, v in enumerate(r)) for r in rows]
    return rows


def is_error(exc: BaseException) -> bool:
    try:
        import pymysql
    except ImportError:
        return False
    return isinstance(exc, pymysql.MySQLError)


def code(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def message(exc: BaseException, cfg: SqlConfig) -> str:
    if code(exc) == ER_STATEMENT_TIMEOUT:
        return f"query took longer than query_timeout = {cfg.query_timeout:g} s"
    if code(exc) in (ER_TABLEACCESS_DENIED, ER_COLUMNACCESS_DENIED):
        return f"missing SELECT grant on {cfg.table}: {_text(exc)}"
    return f"query failed: {_text(exc)}"


def _text(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    text = str(args[1]) if len(args) > 1 else str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def grantee(current_user: str) -> str:
    """`reader@%` (CURRENT_USER()) as information_schema's GRANTEE `'reader'@'%'`."""
    user, _, host = current_user.rpartition("@")
    return f"'{user}'@'{host}'"


def write_grants_sql() -> str:
    """The user's global, schema and table privileges on one table (args: grantee x3, schema x2, table)."""
    return ("SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s "
            "UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES "
            "WHERE GRANTEE = %s AND TABLE_SCHEMA = %s "
            "UNION SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES "
            "WHERE GRANTEE = %s AND TABLE_SCHEMA = %s AND TABLE_NAME = %s")
