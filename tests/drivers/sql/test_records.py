"""Rows straight to business events (the `record` rule): quantities, stops, quarantined bad rows.

The rule's own behaviour on rows read by the SQL driver from a SQLite file, its
configuration's key paths, the pipeline storing every bad row (no repeat
throttle), and end to end: MariaDB rows -> `linebridge run` -> sandbox Odoo,
exactly once across kill -9 of the gateway, bad rows as dead letters.
"""
from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from drivers.base import Quality, Sample
from gateway.config import parse as load_config_text
from gateway.rules.build import build
from gateway.rules.config import RecordRuleConfig
from store.queue import Store
from tests.drivers.sql import make_driver
from tests.drivers.sql.kills import killed_runs
from tests.helpers import wait_for


def _rule(kind: str = "production", **kw) -> object:
    return build(RecordRuleConfig("mes_" + kind, "db", kw.pop("tag", "parts"), kind, **kw), "gw", "CNC-01")


def _rows(tmp_path, rows) -> list[list[Sample]]:
    db = tmp_path / "mes.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE production (id INTEGER PRIMARY KEY, ts TEXT, good_count, scrap_count)")
        conn.executemany("INSERT INTO production VALUES (?, ?, ?, ?)", rows)

    async def read():
        driver = make_driver(None, backend="sqlite", database=str(db))
        gen = driver.samples()
        got = [await asyncio.wait_for(gen.__anext__(), 5) for _ in rows]
        await driver.stop()
        [b async for b in gen]
        return got

    return asyncio.run(read())


def _apply(rule, batches) -> list:
    events = []
    for batch in batches:
        for sample in batch:
            if rule.matches(sample):
                produced, state = rule.apply(rule.load_state(None), sample)
                assert state is None
                events += produced
    return events


def test_each_row_is_one_event_and_a_bad_row_is_quarantined_naming_table_key_and_column(tmp_path):
    batches = _rows(tmp_path, [(1, "2024-03-05T08:00:00", 5, 1), (2, "2024-03-05T08:00:00", None, 0),
                               (3, "2024-03-05T08:00:00", "lots", 0), (4, "2024-03-05T08:00:00", -2, 0),
                               (5, "2024-03-05T08:00:00", 0, 0), (6, "2024-03-05T08:00:00", 7, 2)])
    events = _apply(_rule(), batches)
    good = [e for e in events if e.kind == "production"]
    assert [e.data["quantity"] for e in good] == [5, 7]
    assert good[0].data["origin"] == "table production key id=1 column 'good_count'"
    assert len({e.id for e in good}) == 2        # same second, distinct rows: distinct ids
    bad = [e for e in events if e.kind == "implausible"]
    assert [(e.data["origin"], e.data["reason"]) for e in bad] == [
        ("table production key id=2 column 'good_count'", "NULL"),
        ("table production key id=3 column 'good_count'", "not a number: 'lots'"),
        ("table production key id=4 column 'good_count'", "-2 is not a quantity (a finite number >= 0)")]
    assert all(e.data["record"] is True for e in bad) and len({e.id for e in bad}) == 3
    # the same rows read again (a crash before the watermark moved) make the same ids
    assert [e.id for e in _apply(_rule(), batches)] == [e.id for e in events]
    scrap = _apply(_rule("scrap", tag="scrap"), batches)
    assert [(e.kind, e.data["quantity"]) for e in scrap] == [("scrap", 1), ("scrap", 2)]
    assert {e.id for e in scrap}.isdisjoint(e.id for e in events)


def test_a_stop_row_is_a_downtime_start_and_its_end_and_consumption_names_its_material(tmp_path):
    batches = _rows(tmp_path, [(1, "2024-03-05T08:10:00+00:00", 90.5, 12.5)])
    start, end = _apply(_rule("downtime", code=102), batches)
    assert (start.kind, start.ts, start.data["code"]) == ("downtime_start", "2024-03-05T08:08:29.500Z", 102)
    assert (end.kind, end.ts) == ("downtime_end", "2024-03-05T08:10:00.000Z")
    assert end.data["start_event_id"] == start.id and end.data["duration_s"] == 90.5
    (use,) = _apply(_rule("consumption", tag="scrap", material="PA6-GF30", unit="kg"), batches)
    assert use.kind == "consumption" and use.data["quantity"] == 12.5
    assert (use.data["material"], use.data["unit"]) == ("PA6-GF30", "kg")


def test_a_record_beyond_its_limit_is_quarantined_not_counted(tmp_path):
    batches = _rows(tmp_path, [(1, "2024-03-05T08:00:00", 4_000_000, 700_000), (2, "2024-03-05T08:01:00", 3, 60)])
    events = _apply(_rule(), batches)
    assert [(e.kind, e.data.get("quantity"), e.data.get("reason")) for e in events] == [
        ("implausible", None, "4000000 is above max_quantity = 1e+06"), ("production", 3, None)]
    stops = _apply(_rule("downtime", tag="scrap", max_duration=3600), batches)
    assert [e.kind for e in stops] == ["implausible", "downtime_start", "downtime_end"]
    assert stops[0].data["reason"] == "700000 is above max_duration = 3600"


def test_a_device_that_did_not_answer_quarantines_nothing():
    rule = _rule()
    dead = Sample("db", "parts", None, Quality.BAD_COMM, 1.0, "connection refused")
    assert rule.apply(None, dead) == ([], None)


def _config(rules: str, device: str = 'table = "production"') -> str:
    return f"""
[gateway]
id = "gw"
[machines.CNC-01]
work_center = "CNC-01"
[devices.db]
type = "sql"
backend = "sqlite"
database = "/tmp/none.db"
{device}
key_column = "id"
timestamp_column = "ts"
machine = "CNC-01"
[devices.db.columns]
parts = "good_count"
stop = "stop_s"
{rules}
[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1"
"""


def test_record_rule_configuration_errors_carry_their_key_paths():
    from gateway.errors import ConfigError
    with pytest.raises(ConfigError) as err:
        load_config_text(_config("""
[rules.use]
type = "record"
device = "db"
tag = "parts"
kind = "consumption"
code = 3
[rules.stops]
type = "record"
device = "db"
tag = "stop"
kind = "downtime"
unit = "s"
max_quantity = 5
[rules.odd]
type = "record"
device = "db"
tag = "parts"
kind = "quality_result"
"""))
    text = str(err.value)
    for line in ("rules.use.material: is required", "rules.use.code: is not for kind = 'consumption'",
                 "rules.stops.unit: is not for kind = 'downtime'",
                 "rules.stops.max_quantity: is not for kind = 'downtime'", "rules.odd.kind:"):
        assert line in text, text
    cfg = load_config_text(_config("""
[rules.stops]
type = "record"
device = "db"
tag = "stop"
kind = "downtime"
code = 102
"""))
    assert cfg.rules["stops"] == RecordRuleConfig("stops", "db", "stop", "downtime", None, "", 102)


# -- end to end: MariaDB -> linebridge run -> sandbox Odoo -------------------------------------

def _e2e_config(db, odoo_port: int) -> str:
    from gateway.demo import demo_config_text
    text = demo_config_text().replace("127.0.0.1:8069", f"127.0.0.1:{odoo_port}")
    head, tail = text[:text.index("# One machine")], text[text.index("# Master data mapping"):]
    return head + f"""
[devices.mes]
type = "sql"
backend = "mariadb"
dsn = "{db.dsn('reader')}"
table = "cycle_log"
watermark = "id"
key_column = "id"
timestamp_column = "ts"
batch_rows = 20
poll_interval = 0.1
query_timeout = 5.0
machine = "CNC-01"

[devices.mes.columns]
good = "good_qty"
stop = "stop_s"

[rules.mes_good]
type = "record"
device = "mes"
tag = "good"
kind = "production"

[rules.mes_stops]
type = "record"
device = "mes"
tag = "stop"
kind = "downtime"
code = 102

""" + tail


def _odoo(port: int, model: str, method: str, args: list, kw: dict | None = None):
    import httpx
    body = {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
        "service": "object", "method": "execute_kw",
        "args": ["sandbox", 2, "admin", model, method, args] + ([kw] if kw else [])}}
    return httpx.post(f"http://127.0.0.1:{port}/jsonrpc", json=body, timeout=5).json()["result"]


def _produced(port: int) -> float:
    rows = _odoo(port, "mrp.workorder", "search_read", [[]], {"fields": ["qty_producing"]})
    return sum(r["qty_producing"] for r in rows)


def _letters(state) -> list[dict]:
    store = Store(state / "store", readonly=True)   # read beside the running gateway
    try:
        return store.dead_letters("odoo")
    finally:
        store.close()


def test_mariadb_rows_land_in_odoo_once_across_kill_9_and_bad_rows_are_dead_letters(mariadb, tmp_path):
    import random
    mariadb.sql("DROP TABLE IF EXISTS cycle_log",
                "CREATE TABLE cycle_log (id BIGINT AUTO_INCREMENT PRIMARY KEY, ts DATETIME(3) NOT NULL, "
                "good_qty INT NULL, stop_s DOUBLE NOT NULL DEFAULT 0)",
                "CREATE USER IF NOT EXISTS 'reader'@'%'", "GRANT SELECT ON mes.cycle_log TO 'reader'@'%'")
    rng = random.Random(1919)
    good, bad_ids, stops, next_id = 0, [], 0, 1

    def insert(n: int) -> None:
        nonlocal good, stops, next_id
        values = []
        for _ in range(n):
            qty: object = rng.randint(1, 4)
            if next_id % 17 == 0:
                qty, _ = "NULL", bad_ids.append(next_id)   # a row the MES wrote without its count
            else:
                good += qty
            stop_s = 0
            if next_id % 23 == 0:
                stop_s, stops = 30 + next_id, stops + 1
            # several rows per second: ids, not times, tell them apart
            values.append(f"({next_id}, '2024-03-05 08:00:00' + INTERVAL {next_id // 3} SECOND, {qty}, {stop_s})")
            next_id += 1
        mariadb.sql("INSERT INTO cycle_log VALUES " + ", ".join(values))

    with killed_runs(tmp_path, lambda port: _e2e_config(mariadb, port), insert, _produced, rng) as run:
        wait_for(lambda: _produced(run.odoo_port) == good, 30,
                 f"Odoo to show the table's {good} parts (has {_produced(run.odoo_port)})")
        wait_for(lambda: len(_letters(run.state)) == len(bad_ids), 20, "a dead letter per bad row")
        time.sleep(1.0)   # nothing more comes: the count stays exact
        assert _produced(run.odoo_port) == good
        letters = _letters(run.state)
        assert sorted(letter["event"]["data"]["origin"] for letter in letters) == sorted(
            f"table cycle_log key id={i} column 'good_qty'" for i in bad_ids)
        assert all("NULL" in letter["error"] for letter in letters), letters[0]
        logs = _odoo(run.odoo_port, "mrp.workcenter.productivity", "search_read", [[]],
                     {"fields": ["date_start", "date_end"]})
        assert len(logs) == stops and all(r["date_end"] for r in logs)


def test_the_shipped_sample_with_its_rules_is_a_valid_configuration():
    from pathlib import Path
    sample = (Path(__file__).parents[3] / "drivers" / "sql" / "sample.toml").read_text()
    cfg = load_config_text('[gateway]\nid = "gw"\n[machines.IMM-07]\nwork_center = "IMM-07"\n'
                           '[machines.PACK-02]\nwork_center = "PACK-02"\n' + sample
                           + '\n[sinks.up]\ntype = "mqtt"\nurl = "mqtt://127.0.0.1"\n')
    assert cfg.rules["packing_stops"] == RecordRuleConfig("packing_stops", "mes_packing", "stop", "downtime",
                                                          None, "", 102)
    assert cfg.devices["mes_packing"].config.backend == "mariadb"
