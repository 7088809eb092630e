"""The SQL driver against real SQLite files: watermarks across restarts, ties, bad rows, timeouts."""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from drivers.base import ConfigCollector, Quality
from drivers.sql import SqlDriver, check
from tests.drivers.sql import DictState, make_driver, values


def _db(path: Path, rows: list[tuple]) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS production "
                     "(id INTEGER, ts TEXT, good_count, scrap_count)")
        conn.executemany("INSERT INTO production VALUES (?, ?, ?, ?)", rows)
    conn.close()
    return path


def test_rows_are_taken_once_across_a_restart_with_the_stored_watermark(tmp_path):
    db = _db(tmp_path / "mes.db", [(1, "2024-03-05T08:00:00", 10, 0),
                                   (2, "2024-03-05T08:01:00", 20, 1),
                                   (3, "2024-03-05T08:02:00", 30, 1)])
    state = DictState()

    async def scenario():
        first = make_driver(state, backend="sqlite", database=str(db)).samples()
        b1 = await first.__anext__()
        b2 = await first.__anext__()        # row 1 handed off: its watermark is stored
        await first.aclose()                # a crash before row 2 was handed off
        assert values(b1) == {"parts": 10, "scrap": 0} and values(b2)["parts"] == 20
        assert b1[0].source_ts == 1709625600.0 and b1[0].quality is Quality.GOOD
        assert b1[0].origin == "table production key id=1 column 'good_count'"

        second = make_driver(state, backend="sqlite", database=str(db))
        gen = second.samples()
        again = [values(await gen.__anext__())["parts"] for _ in range(2)]
        _db(db, [(4, "2024-03-05T08:03:00", 40, 2)])
        again.append(values(await asyncio.wait_for(gen.__anext__(), 5))["parts"])
        await second.stop()
        assert [b async for b in gen] == []   # resumed: row 4's watermark stored, then stopped
        return again

    assert asyncio.run(scenario()) == [20, 30, 40]   # row 1 never again, row 2 once more
    assert b'"int": 4' in state.data["watermark"]


def test_timestamp_watermark_breaks_ties_with_the_key_across_pages_and_restarts(tmp_path):
    same = "2024-03-05T08:00:00"
    db = _db(tmp_path / "mes.db", [(5, same, 1, 0), (3, same, 2, 0), (9, same, 3, 0),
                                   (1, "2024-03-05T07:59:00", 0, 0), (7, "2024-03-05T08:01:00", 4, 0)])
    state = DictState()

    async def take(n: int) -> list[int]:
        driver = make_driver(state, backend="sqlite", database=str(db), watermark="timestamp",
                             batch_rows=2)
        gen = driver.samples()
        got = [values(await asyncio.wait_for(gen.__anext__(), 5))["parts"] for _ in range(n)]
        await driver.stop()
        rest = [values(b)["parts"] async for b in gen]
        return got + rest

    async def scenario():
        first = await take(3)            # rows 1, 3, 5 (the page boundary is between 3 and 5)
        second = await take(2)           # rows 9, 7
        return first, second

    first, second = asyncio.run(scenario())
    assert first == [0, 2, 1] and second == [3, 4]


def test_a_bad_row_names_table_key_and_column_and_the_next_rows_flow(tmp_path):
    db = _db(tmp_path / "mes.db", [(None, "2024-03-05T07:00:00", 1, 0),   # never selected
                                   (1, "2024-03-05T08:00:00", None, 0),
                                   (2, "2024-03-05T08:01:00", "abc", 0),
                                   (3, "2024-03-05T08:02:00", 9e999, 0),
                                   (4, "not a time", 40, 0),
                                   (5, "2024-03-05T08:04:00", 50, 3)])

    async def scenario():
        driver = make_driver(None, backend="sqlite", database=str(db))
        gen = driver.samples()
        batches = [await asyncio.wait_for(gen.__anext__(), 5) for _ in range(5)]
        await driver.stop()
        [b async for b in gen]
        return driver, batches

    driver, batches = asyncio.run(scenario())
    errors = [b[0].error for b in batches[:4]]
    assert errors[0] == "table production key id=1 column 'good_count': NULL"
    assert errors[1] == "table production key id=2 column 'good_count': not a number: 'abc'"
    assert errors[2] == "table production key id=3 column 'good_count': not finite: inf"
    assert errors[3].startswith("table production key id=4 column 'ts': not an ISO 8601 timestamp")
    assert all(b[0].quality is Quality.BAD_CONFIG and b[0].value is None for b in batches[:4])
    assert batches[0][1].quality is Quality.GOOD and batches[0][1].value == 0  # the row's other cells
    assert values(batches[4]) == {"parts": 50, "scrap": 3}
    assert batches[4][0].quality is Quality.GOOD
    assert driver.counts == {"rows": 5, "bad_cells": 5}


def test_a_missing_database_gives_bad_samples_then_rows_when_it_appears(tmp_path):
    db = tmp_path / "later.db"

    async def scenario():
        driver = make_driver(None, backend="sqlite", database=str(db))
        gen = driver.samples()
        bad = [await asyncio.wait_for(gen.__anext__(), 5) for _ in range(3)]
        _db(db, [(1, "2024-03-05T08:00:00", 7, 0)])
        good = await asyncio.wait_for(gen.__anext__(), 5)
        while good[0].quality is not Quality.GOOD:
            good = await asyncio.wait_for(gen.__anext__(), 5)
        await driver.stop()
        [b async for b in gen]
        return driver, bad, good

    driver, bad, good = asyncio.run(scenario())
    assert all(s.quality is Quality.BAD_COMM and "does not exist" in s.error for b in bad for s in b)
    assert values(good) == {"parts": 7, "scrap": 0}
    assert driver.health.reconnects == 1 and driver.health.connected


def test_a_query_longer_than_query_timeout_is_interrupted(tmp_path):
    db = tmp_path / "slow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE VIEW production AS WITH RECURSIVE c(x) AS "
                     "(SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 500000000) "
                     "SELECT x AS id, x AS ts, x AS good_count, x AS scrap_count FROM c "
                     "ORDER BY x DESC")
    conn.close()

    async def scenario():
        driver = make_driver(None, backend="sqlite", database=str(db), query_timeout=0.2)
        gen = driver.samples()
        batch = await asyncio.wait_for(gen.__anext__(), 10)
        await driver.stop()
        [b async for b in gen]
        return batch

    batch = asyncio.run(scenario())
    assert batch[0].quality is Quality.BAD_COMM
    assert batch[0].error == "query took longer than query_timeout = 0.2 s"


def test_the_connection_test_names_a_missing_column(tmp_path):
    db = _db(tmp_path / "mes.db", [])
    issues = ConfigCollector()
    cfg = SqlDriver.parse_config({"type": "sql", "backend": "sqlite", "database": str(db),
                                  "table": "production", "key_column": "id",
                                  "timestamp_column": "ts", "columns": {"parts": "good_cnt"}},
                                 "devices.db", issues)
    assert check(cfg) == ["query failed: no such column: good_cnt"]
    ok = SqlDriver.parse_config({"type": "sql", "backend": "sqlite", "database": str(db),
                                 "table": "production", "key_column": "id",
                                 "timestamp_column": "ts", "columns": {"parts": "good_count"}},
                                "devices.db", issues)
    assert check(ok) == []


def test_config_errors_carry_their_key_paths():
    issues = ConfigCollector()
    cfg = SqlDriver.parse_config({"type": "sql", "backend": "postgresql", "table": "x; drop",
                                  "key_column": "ts", "timestamp_column": "ts",
                                  "watermark": "timestamp", "columns": {"parts": "a b"},
                                  "dsn": "host=x password=secret", "batch_rows": 0},
                                 "devices.db", issues)
    assert cfg is None
    paths = sorted(i.path for i in issues.issues)
    assert paths == ["devices.db.batch_rows", "devices.db.columns.parts", "devices.db.dsn",
                     "devices.db.key_column", "devices.db.table"]


def test_the_shipped_sample_is_valid():
    import tomllib
    sample = tomllib.loads((Path(__file__).parents[3] / "drivers" / "sql" / "sample.toml").read_text())
    for name, section in sample["devices"].items():
        issues = ConfigCollector()
        cfg = SqlDriver.parse_config(section, f"devices.{name}", issues)
        assert issues.issues == [] and cfg is not None and cfg.machine


def test_a_crash_after_the_store_before_the_watermark_counts_no_part_twice(tmp_path):
    """The window the hand-off leaves: the row's events and counter state are stored, its
    watermark is not. The re-read must give the counter rule nothing new."""
    from gateway.config import CounterRuleConfig
    from gateway.rules.counter import CounterRule

    db = _db(tmp_path / "mes.db", [(i, f"2024-03-05T08:0{i}:00", 10 * i, 0) for i in range(1, 6)])
    rule = CounterRule(CounterRuleConfig("parts", "db", "parts", "production", 32, "zero", 1 << 30),
                       "gw", "CNC-01")
    state = DictState()
    stored: dict = {"counter": None, "ids": set(), "parts": 0}

    def handle(batch):   # what the gateway stores in one transaction: events and the rule's state
        counter = stored["counter"]
        for sample in batch:
            if rule.matches(sample):
                events, counter = rule.apply(counter, sample)
                for e in events:
                    if e.id not in stored["ids"]:     # the store's intake dedupe
                        stored["ids"].add(e.id)
                        stored["parts"] += e.data["quantity"]
        stored["counter"] = counter

    async def scenario():
        gen = make_driver(state, backend="sqlite", database=str(db), batch_rows=3).samples()
        handle(await gen.__anext__())
        handle(await gen.__anext__())
        await gen.aclose()            # killed after storing row 2, before its watermark
        driver = make_driver(state, backend="sqlite", database=str(db), batch_rows=3)
        gen = driver.samples()
        for _ in range(4):            # rows 2 (again), 3, 4, 5
            handle(await asyncio.wait_for(gen.__anext__(), 5))
        await driver.stop()
        [handle(b) async for b in gen]

    asyncio.run(scenario())
    assert stored["parts"] == 50
