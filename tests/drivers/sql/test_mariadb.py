"""The SQL driver against a real MariaDB server: grants, watermarks, time zones, overflow, a dead server."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from drivers.base import ConfigCollector, Quality
from drivers.sql import SqlDriver, check
from tests.drivers.sql import DictState, make_driver, values


def _setup(db, table: str = "production", ts_type: str = "TIMESTAMP(3)") -> None:
    db.sql(f"DROP TABLE IF EXISTS {table}",
           f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, ts {ts_type} NULL, "
           "good_count DECIMAL(30, 0), scrap_count BIGINT UNSIGNED) ENGINE=InnoDB",
           "CREATE USER IF NOT EXISTS 'reader'@'%'",
           "CREATE USER IF NOT EXISTS 'stranger'@'%'",
           "CREATE USER IF NOT EXISTS 'writer'@'%'",
           "GRANT ALL ON mes.* TO 'writer'@'%'",
           f"GRANT SELECT ON mes.{table} TO 'reader'@'%'")


def _driver(db, state, table="production", user="reader", **kw) -> SqlDriver:
    return make_driver(state, backend="mariadb", dsn=db.dsn(user), table=table, connect_timeout=2, **kw)


async def _take(gen, n: int) -> list:
    return [await asyncio.wait_for(gen.__anext__(), 10) for _ in range(n)]


async def _close(driver: SqlDriver, gen) -> None:
    await driver.stop()
    [b async for b in gen]


def test_the_connection_test_names_a_missing_select_grant_and_a_writing_user(mariadb):
    _setup(mariadb)
    assert check(_driver(mariadb, None, user="stranger").config) == [
        "user 'stranger'@'%' lacks the SELECT grant on production "
        "(GRANT SELECT ON mes.production TO 'stranger'@'%')"]
    # a grant on another table of the database lets it connect; the query then names the grant
    mariadb.sql("DROP TABLE IF EXISTS other", "CREATE TABLE other (id INT)",
                "GRANT SELECT ON mes.other TO 'stranger'@'%'")
    assert check(_driver(mariadb, None, user="stranger").config) == [
        "user 'stranger'@'%' lacks the SELECT grant on production "
        "(GRANT SELECT ON mes.production TO 'stranger'@'%')"]
    mariadb.sql("REVOKE ALL ON mes.other FROM 'stranger'@'%'")
    assert check(_driver(mariadb, None).config) == []
    assert check(_driver(mariadb, None, table="mes.production").config) == []
    assert check(_driver(mariadb, None, user="writer").config) == [
        "warning: user 'writer'@'%' may write to production; a read-only user is advised"]
    assert check(_driver(mariadb, None, user="writer", table="nowhere").config)[0].startswith(
        "table or view nowhere not found")
    missing = _driver(mariadb, None, user="writer", columns={"parts": "good_cnt"}).config
    assert check(missing) == ["query failed: Unknown column 'good_cnt' in 'SELECT'"]


def test_the_session_is_read_only_even_for_a_user_that_may_write(mariadb):
    _setup(mariadb)
    driver = _driver(mariadb, None, user="writer")
    with pytest.raises(Exception, match="READ ONLY"):
        driver.source._query("INSERT INTO production VALUES (1, NULL, 1, 1)", [])
    assert mariadb.sql("SELECT COUNT(*) FROM production") == [(0,)]


def test_rows_once_across_a_restart_with_equal_timestamps_and_an_overflow(mariadb):
    _setup(mariadb)
    mariadb.sql("SET time_zone = '+00:00'",
                "INSERT INTO production VALUES "
                "(2, '2024-03-05 08:00:00.250', 10, 0), (1, '2024-03-05 08:00:00.250', 5, 0), "
                "(3, '2024-03-05 08:00:00.250', 7, 18446744073709551615), "
                "(4, '2024-03-05 08:01:00', 20, 1)")
    state = DictState()

    async def scenario():
        first = _driver(mariadb, state, watermark="timestamp", batch_rows=2)
        gen = first.samples()
        got = await _take(gen, 2)
        await gen.aclose()            # crash: row 2 was not handed off
        second = _driver(mariadb, state, watermark="timestamp", batch_rows=2)
        gen = second.samples()
        got += await _take(gen, 3)
        mariadb.sql("SET time_zone = '+00:00'",
                    "INSERT INTO production VALUES (5, '2024-03-05 08:01:00', 30, 1)")
        got += await _take(gen, 1)
        await _close(second, gen)
        return got

    got = asyncio.run(scenario())
    assert [values(b)["parts"] for b in got] == [5, 10, 10, 7, 20, 30]
    overflow = got[3][1]
    assert overflow.quality is Quality.BAD_CONFIG and overflow.value is None
    assert overflow.error.startswith("table production key id=3 column 'scrap_count': "
                                     "integer out of range")
    assert got[3][0].quality is Quality.GOOD          # the row's other cell is still good
    # TIMESTAMP is read in UTC whatever the server's zone, with its milliseconds
    assert got[0][0].source_ts == datetime(2024, 3, 5, 8, 0, 0, 250000, timezone.utc).timestamp()
    assert isinstance(got[0][0].value, int)
    assert state.data["watermark"] == b'[{"datetime": "2024-03-05T08:01:00+00:00"}, {"int": 5}]'


def test_datetime_columns_are_read_in_the_configured_zone(mariadb):
    _setup(mariadb, "local_cycles", ts_type="DATETIME")
    mariadb.sql("INSERT INTO local_cycles VALUES (1, '2024-03-31 01:30:00', 1, 0), "
                "(2, '2024-03-31 03:30:00', 2, 0)")

    async def scenario():
        driver = _driver(mariadb, None, table="local_cycles", timezone="Europe/Berlin")
        gen = driver.samples()
        got = await _take(gen, 2)
        await _close(driver, gen)
        return got

    got = asyncio.run(scenario())
    # across the spring-forward gap: 01:30 CET and 03:30 CEST are one hour apart
    assert [b[0].source_ts for b in got] == [
        datetime(2024, 3, 31, 0, 30, tzinfo=timezone.utc).timestamp(),
        datetime(2024, 3, 31, 1, 30, tzinfo=timezone.utc).timestamp()]


def test_a_dead_server_gives_bad_samples_then_the_driver_reconnects(mariadb):
    _setup(mariadb)
    mariadb.sql("INSERT INTO production VALUES (1, '2024-03-05 08:00:00', 10, 0)")

    async def scenario():
        driver = _driver(mariadb, None)
        gen = driver.samples()
        first = await asyncio.wait_for(gen.__anext__(), 10)
        await asyncio.to_thread(mariadb.stop)
        bad = await asyncio.wait_for(gen.__anext__(), 15)
        await asyncio.to_thread(mariadb.start)
        mariadb.sql("INSERT INTO production VALUES (2, '2024-03-05 08:01:00', 20, 0)")
        nxt = await asyncio.wait_for(gen.__anext__(), 15)
        while nxt[0].quality is not Quality.GOOD:
            nxt = await asyncio.wait_for(gen.__anext__(), 15)
        await _close(driver, gen)
        return driver, first, bad, nxt

    driver, first, bad, nxt = asyncio.run(scenario())
    assert values(first)["parts"] == 10
    assert bad[0].quality is Quality.BAD_COMM and bad[0].error
    assert values(nxt) == {"parts": 20, "scrap": 0}
    assert driver.health.reconnects >= 1 and driver.health.connected


def test_a_slow_query_is_cut_by_max_statement_time(mariadb):
    _setup(mariadb)
    mariadb.sql("CREATE OR REPLACE VIEW slow AS SELECT 1 AS id, NOW() AS ts, "
                "SLEEP(3) AS good_count, 0 AS scrap_count",
                "GRANT SELECT ON mes.slow TO 'reader'@'%'")

    async def scenario():
        driver = _driver(mariadb, None, table="slow", query_timeout=0.3)
        gen = driver.samples()
        batch = await asyncio.wait_for(gen.__anext__(), 5)
        await _close(driver, gen)
        return batch

    batch = asyncio.run(scenario())
    assert batch[0].quality is Quality.BAD_COMM
    assert batch[0].error == "query took longer than query_timeout = 0.3 s"


@pytest.mark.parametrize("dsn, problem", [
    ("host=db1 port=3306 dbname=mes", "user is required (a read-only database user)"),
    ("host=db1 user=ro password=x", "must not hold the password; use password_env"),
    ("host=db1 user=ro sslmode=verify-full", "sslmode=verify-full needs sslrootcert (the CA file)"),
    ("host=db1 user=ro sslmode=on", "sslmode must be one of disable, prefer, require, verify-ca, "
                                    "verify-full, got 'on'"),
    ("host=db1 user=ro charset=latin1", "unknown key 'charset' (allowed: host, port, dbname, user, "
                                        "unix_socket, sslmode, sslrootcert)"),
    ("host=db1 port=99999 user=ro", "port must be 1..65535, got '99999'"),
])
def test_a_bad_mariadb_dsn_is_named_with_its_key_path(dsn, problem):
    issues = ConfigCollector()
    cfg = SqlDriver.parse_config({"type": "sql", "backend": "mariadb", "dsn": dsn, "table": "t",
                                  "key_column": "id", "timestamp_column": "ts",
                                  "columns": {"parts": "good"}}, "devices.mes", issues)
    assert cfg is None
    assert [str(i) for i in issues.issues] == [f"devices.mes.dsn: {problem}"]


def _cipher(driver: SqlDriver) -> str:
    try:
        return driver.source._query("SHOW SESSION STATUS LIKE 'Ssl_cipher'", [])[0][1]
    finally:
        driver.source.close()


def test_tls_is_used_when_offered_verified_when_asked_and_refused_with_a_foreign_ca(mariadb, tmp_path):
    from tests.drivers.mqtt.broker import make_tls_files
    _setup(mariadb)
    mariadb.sql("CREATE USER IF NOT EXISTS 'tls_only'@'%' REQUIRE SSL",
                "GRANT SELECT ON mes.production TO 'tls_only'@'%'")
    ca = mariadb.tls.ca

    def driver(user: str, tls: str) -> SqlDriver:
        return make_driver(None, backend="mariadb", dsn=mariadb.dsn(user, tls=tls), table="production",
                           connect_timeout=2)

    assert _cipher(driver("reader", ""))                         # the default: prefer
    assert _cipher(driver("reader", "sslmode=require"))
    assert _cipher(driver("tls_only", f"sslmode=verify-full sslrootcert={ca}"))
    assert check(driver("tls_only", f"sslmode=verify-ca sslrootcert={ca}").config) == []
    assert _cipher(driver("reader", "sslmode=disable")) == ""
    refused = check(driver("tls_only", "sslmode=disable").config)
    assert refused == ["cannot connect: Access denied for user 'tls_only'@'127.0.0.1' (using password: NO)"]
    foreign = make_tls_files(tmp_path / "foreign").ca
    problems = check(driver("reader", f"sslmode=verify-full sslrootcert={foreign}").config)
    assert len(problems) == 1 and problems[0].startswith("cannot connect: ") \
        and "CERTIFICATE_VERIFY_FAILED" in problems[0], problems
