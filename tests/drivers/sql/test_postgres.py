"""The SQL driver against a real PostgreSQL cluster: grants, watermarks, overflow, a dead server."""
from __future__ import annotations

import asyncio

from drivers.base import Quality
from drivers.sql import check
from tests.drivers.sql import DictState, make_driver, values


def _setup(pg, table: str) -> None:
    pg.sql(f"DROP TABLE IF EXISTS {table}",
           f"CREATE TABLE {table} (id bigint PRIMARY KEY, ts timestamptz, "
           "good_count numeric, scrap_count integer)",
           "DO $$ BEGIN CREATE ROLE reader LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
           "DO $$ BEGIN CREATE ROLE stranger LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
           f"GRANT SELECT ON {table} TO reader")


def _pg_driver(pg, state, table="production", user="reader", **kw):
    return make_driver(state, backend="postgresql", dsn=pg.dsn(user), table=table,
                       connect_timeout=2, **kw)


def test_the_connection_test_names_a_missing_select_grant_and_a_writing_user(pg):
    _setup(pg, "production")
    assert check(_pg_driver(pg, None, user="stranger").config) == [
        "user stranger lacks the SELECT grant on production "
        "(GRANT SELECT ON production TO stranger)"]
    assert check(_pg_driver(pg, None).config) == []
    assert check(_pg_driver(pg, None, user="postgres").config) == [
        "warning: user postgres may write to production; a read-only user is advised"]
    assert check(_pg_driver(pg, None, table="nowhere").config)[0].startswith(
        "table or view nowhere not found")
    missing = _pg_driver(pg, None, columns={"parts": "good_cnt"}).config
    assert check(missing) == ['query failed: column "good_cnt" does not exist']


def test_rows_once_across_a_restart_with_equal_timestamps_and_an_overflow(pg):
    _setup(pg, "production")
    pg.sql("INSERT INTO production VALUES "
           "(2, '2024-03-05 08:00:00+00', 10, 0), (1, '2024-03-05 08:00:00+00', 5, 0), "
           "(3, '2024-03-05 08:00:00+00', 99999999999999999999999, 0), "
           "(4, '2024-03-05 08:01:00+00', 20, 1)")
    state = DictState()

    async def scenario():
        first = _pg_driver(pg, state, watermark="timestamp", batch_rows=2)
        gen = first.samples()
        got = [await asyncio.wait_for(gen.__anext__(), 5) for _ in range(2)]
        await gen.aclose()            # crash: row 2 was not handed off
        second = _pg_driver(pg, state, watermark="timestamp", batch_rows=2)
        gen = second.samples()
        got += [await asyncio.wait_for(gen.__anext__(), 5) for _ in range(3)]
        pg.sql("INSERT INTO production VALUES (5, '2024-03-05 08:01:00+00', 30, 1)")
        got.append(await asyncio.wait_for(gen.__anext__(), 5))
        await second.stop()
        [b async for b in gen]
        return got

    got = asyncio.run(scenario())
    assert [values(b)["parts"] for b in got] == [5, 10, 10, None, 20, 30]
    overflow = got[3][0]
    assert overflow.quality is Quality.BAD_CONFIG
    assert overflow.error.startswith("table production key id=3 column 'good_count': "
                                     "integer out of range")
    assert got[0][0].source_ts == 1709625600.0 and isinstance(got[0][0].value, int)


def test_a_dead_server_gives_bad_samples_then_the_driver_reconnects(pg):
    _setup(pg, "production")
    pg.sql("INSERT INTO production VALUES (1, '2024-03-05 08:00:00+00', 10, 0)")

    async def scenario():
        driver = _pg_driver(pg, None)
        gen = driver.samples()
        first = await asyncio.wait_for(gen.__anext__(), 5)
        await asyncio.to_thread(pg.stop)
        bad = await asyncio.wait_for(gen.__anext__(), 10)
        await asyncio.to_thread(pg.start)
        pg.sql("INSERT INTO production VALUES (2, '2024-03-05 08:01:00+00', 20, 0)")
        nxt = await asyncio.wait_for(gen.__anext__(), 15)
        while nxt[0].quality is not Quality.GOOD:
            nxt = await asyncio.wait_for(gen.__anext__(), 15)
        await driver.stop()
        [b async for b in gen]
        return driver, first, bad, nxt

    driver, first, bad, nxt = asyncio.run(scenario())
    assert values(first)["parts"] == 10
    assert bad[0].quality is Quality.BAD_COMM and bad[0].error
    assert values(nxt) == {"parts": 20, "scrap": 0}
    assert driver.health.reconnects >= 1 and driver.health.connected


def test_a_slow_query_is_cut_by_the_statement_timeout(pg):
    pg.sql("CREATE OR REPLACE VIEW slow AS SELECT 1::bigint AS id, now() AS ts, "
           "1 AS good_count, 0 AS scrap_count FROM pg_sleep(3)",
           "DO $$ BEGIN CREATE ROLE reader LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
           "GRANT SELECT ON slow TO reader")

    async def scenario():
        driver = _pg_driver(pg, None, table="slow", query_timeout=0.3)
        gen = driver.samples()
        batch = await asyncio.wait_for(gen.__anext__(), 5)
        await driver.stop()
        [b async for b in gen]
        return batch

    batch = asyncio.run(scenario())
    assert batch[0].error == "query took longer than query_timeout = 0.3 s"
