"""The database side of one SQL device: connect read-only, fetch rows after a watermark.

This module owns the blocking calls (the driver runs them in a thread): opening
a read-only connection to a SQLite file (stdlib `sqlite3`, `mode=ro`), a
PostgreSQL server (`psycopg` 3, the `sql-postgres` extra, with a connect
timeout and a server-side `statement_timeout`) or a MariaDB server (PyMySQL,
the `sql-mariadb` extra; its particulars live in `mariadb.py`), the one query a poll makes
(the rows after the watermark, in watermark order, at most `batch_rows`), and
the connection test `check` that names a missing SELECT grant or column. A
query on SQLite is interrupted by a progress handler once `query_timeout` has
passed. Every failure is raised as `SourceError` with a message for a person.
It does not turn rows into samples and keeps no state.
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Sequence

from drivers.sql import mariadb
from drivers.sql.config import SqlConfig, quote


class SourceError(Exception):
    """The database cannot be reached or the query failed; the driver reconnects."""


class Source:
    """One connection (opened on first use) and the poll query of one device."""

    def __init__(self, cfg: SqlConfig) -> None:
        self.cfg = cfg
        self._conn: Any = None
        self._deadline = 0.0

    # -- connection ------------------------------------------------------------------------

    def connect(self) -> None:
        if self._conn is not None:
            return
        cfg = self.cfg
        try:
            if cfg.backend == "sqlite":
                assert cfg.database is not None
                if not Path(cfg.database).is_file():
                    raise SourceError(f"database file {cfg.database} does not exist")
                uri = Path(cfg.database).resolve().as_uri() + "?mode=ro"
                conn = sqlite3.connect(uri, uri=True, timeout=cfg.query_timeout,
                                       check_same_thread=False)
                # an overlong query is interrupted (the handler runs every 1000 VM steps)
                conn.set_progress_handler(lambda: int(time.monotonic() > self._deadline), 1000)
            elif cfg.backend == "mariadb":
                conn = mariadb.connect(cfg)
            else:
                conn = _pg_connect(cfg)
        except sqlite3.Error as exc:
            raise SourceError(f"cannot open {cfg.database}: {exc}") from None
        except mariadb.MariaDbError as exc:
            raise SourceError(str(exc)) from None
        self._conn = conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing a broken connection: nothing more to learn from it
                pass

    # -- the poll query ----------------------------------------------------------------------

    def select_list(self) -> list[str]:
        cfg = self.cfg
        return [cfg.key_column, cfg.timestamp_column, *cfg.columns.values()]

    def fetch(self, mark: Sequence[Any] | None, limit: int) -> list[tuple[Any, ...]]:
        """Rows after `mark` in watermark order: (key, timestamp, mapped columns...)."""
        cfg = self.cfg
        p = "?" if cfg.backend == "sqlite" else "%s"
        key, ts = quote(cfg.key_column, cfg.backend), quote(cfg.timestamp_column, cfg.backend)
        cols = ", ".join(quote(c, cfg.backend) for c in self.select_list())
        if cfg.watermark == "id":
            order = key
            sql_where, args = (f"WHERE {key} > {p}", [mark[0]]) if mark else (f"WHERE {key} IS NOT NULL", [])
        else:
            order = f"{ts}, {key}"
            if mark:
                sql_where = f"WHERE ({ts} > {p} OR ({ts} = {p} AND {key} > {p}))"
                args = [mark[0], mark[0], mark[1]]
            else:
                sql_where, args = f"WHERE {ts} IS NOT NULL AND {key} IS NOT NULL", []
        sql = f"SELECT {cols} FROM {quote(cfg.table, cfg.backend)} {sql_where} ORDER BY {order} LIMIT {int(limit)}"
        return self._query(sql, args)

    def _query(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        self.connect()
        self._deadline = time.monotonic() + self.cfg.query_timeout
        try:
            if self.cfg.backend == "sqlite":
                return [tuple(r) for r in self._conn.execute(sql, args).fetchall()]
            if self.cfg.backend == "mariadb":
                return mariadb.query(self._conn, sql, args)
            with self._conn.cursor() as cur:
                cur.execute(sql, args)
                rows = [tuple(r) for r in cur.fetchall()]
            self._conn.rollback()  # end the read-only transaction: the next poll sees new rows
            return rows
        except sqlite3.OperationalError as exc:
            self.close()
            if "interrupted" in str(exc):
                raise SourceError(f"query took longer than query_timeout = "
                                  f"{self.cfg.query_timeout:g} s") from None
            raise SourceError(f"query failed: {exc}") from None
        except sqlite3.Error as exc:
            self.close()
            raise SourceError(f"query failed: {exc}") from None
        except Exception as exc:
            if _is_pg_error(exc):
                self.close()
                raise SourceError(_pg_message(exc, self.cfg)) from None
            if mariadb.is_error(exc):
                self.close()
                raise SourceError(mariadb.message(exc, self.cfg)) from None
            raise


def _pg_connect(cfg: SqlConfig) -> Any:
    try:
        import psycopg
    except ImportError:
        raise SourceError("backend 'postgresql' needs psycopg: "
                          "pip install 'linebridge[sql-postgres]'") from None
    ms = int(cfg.query_timeout * 1000)
    kwargs: dict[str, Any] = {"connect_timeout": max(1, round(cfg.connect_timeout)),
                              "options": f"-c statement_timeout={ms} -c lock_timeout={ms}",
                              "application_name": "linebridge"}
    if cfg.password_env is not None:
        password = os.environ.get(cfg.password_env)
        if password is None:
            raise SourceError(f"environment variable {cfg.password_env} (password_env) is not set")
        kwargs["password"] = password
    try:
        conn = psycopg.connect(cfg.dsn or "", **kwargs)
        conn.read_only = True
    except psycopg.Error as exc:
        raise SourceError(f"cannot connect: {_first_line(exc)}") from None
    return conn


def _is_pg_error(exc: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    return isinstance(exc, psycopg.Error)


def _pg_message(exc: Any, cfg: SqlConfig) -> str:
    import psycopg.errors as e
    if isinstance(exc, e.QueryCanceled):
        return f"query took longer than query_timeout = {cfg.query_timeout:g} s"
    if isinstance(exc, e.InsufficientPrivilege):
        return f"missing SELECT grant on {cfg.table}: {_first_line(exc)}"
    return f"query failed: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def check(cfg: SqlConfig) -> list[str]:
    """The connection test: problems a person must fix, empty when the device can poll.

    Blocking (call it in a thread); bounded by `connect_timeout` and `query_timeout`.

    Opens the connection, runs the poll's select list with `WHERE 1 = 0` (reads
    no rows) and, on PostgreSQL and MariaDB, names a missing SELECT grant and
    warns when the credentials could also write to the table (read-only is advised).
    """
    source = Source(cfg)
    problems: list[str] = []
    try:
        source.connect()
        if cfg.backend == "postgresql":
            user = source._query("SELECT current_user", [])[0][0]
            try:
                grants = source._query(
                    "SELECT has_table_privilege(%s, %s, 'SELECT'), "
                    "has_table_privilege(%s, %s, 'INSERT, UPDATE, DELETE, TRUNCATE')",
                    [user, cfg.table, user, cfg.table])[0]
            except SourceError as exc:
                return [f"table or view {cfg.table} not found ({exc})"]
            if not grants[0]:
                problems.append(f"user {user} lacks the SELECT grant on {cfg.table} "
                                f"(GRANT SELECT ON {cfg.table} TO {user})")
                return problems
            if grants[1]:
                problems.append(f"warning: user {user} may write to {cfg.table}; "
                                "a read-only user is advised")
        if cfg.backend == "mariadb":
            return _mariadb_check(source, cfg)
        cols = ", ".join(quote(c, cfg.backend) for c in source.select_list())
        source._query(f"SELECT {cols} FROM {quote(cfg.table, cfg.backend)} WHERE 1 = 0", [])
    except SourceError as exc:
        problems.append(str(exc))
    finally:
        source.close()
    return problems


def _mariadb_check(source: Source, cfg: SqlConfig) -> list[str]:
    """MariaDB's connection test: the poll's select list reads, and no write grant on the table."""
    user = source._query("SELECT CURRENT_USER()", [])[0][0]
    who = mariadb.grantee(user)
    schema, _, name = cfg.table.rpartition(".")
    schema = schema or source._query("SELECT DATABASE()", [])[0][0] or ""
    cols = ", ".join(quote(c, cfg.backend) for c in source.select_list())
    try:
        source._query(f"SELECT {cols} FROM {quote(cfg.table, cfg.backend)} WHERE 1 = 0", [])
    except SourceError as exc:
        if str(exc).startswith("missing SELECT grant"):
            return [mariadb.lacks_select(who, cfg)]
        if "doesn't exist" in str(exc):
            return [f"table or view {cfg.table} not found ({exc})"]
        raise
    privileges = {row[0] for row in source._query(mariadb.write_grants_sql(),
                                                  [who, who, schema, who, schema, name])}
    if privileges & set(mariadb.WRITES):
        return [f"warning: user {who} may write to {cfg.table}; a read-only user is advised"]
    return []
