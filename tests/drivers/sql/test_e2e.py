"""End to end: PostgreSQL rows -> `linebridge run` (sql driver, counter rule) -> sandbox Odoo,
exactly once across kill -9 of the gateway."""
from __future__ import annotations

import random
import time

from gateway.demo import demo_config_text
from tests.e2e.test_kill9 import _backlog, _odoo_qty
from tests.drivers.sql.kills import killed_runs
from tests.helpers import wait_for


def _config(pg, odoo_port: int) -> str:
    text = demo_config_text().replace("127.0.0.1:8069", f"127.0.0.1:{odoo_port}")
    head, tail = text[:text.index("# One machine")], text[text.index("# Master data mapping"):]
    return head + f"""
[devices.mes]
type = "sql"
backend = "postgresql"
dsn = "{pg.dsn('reader')}"
table = "cycles"
watermark = "timestamp"
key_column = "id"
timestamp_column = "ts"
batch_rows = 20
poll_interval = 0.1
query_timeout = 5.0
machine = "CNC-01"

[devices.mes.columns]
parts = "good_total"

[rules.mes_parts]
type = "counter"
device = "mes"
tag = "parts"
kind = "production"
width = 32
initial = "zero"
max_rate = 0

""" + tail


def test_rows_land_in_odoo_exactly_once_across_kill_9_of_the_gateway(pg, tmp_path):
    pg.sql("DROP TABLE IF EXISTS cycles",
           "CREATE TABLE cycles (id bigint PRIMARY KEY, ts timestamptz NOT NULL, good_total bigint)",
           "DO $$ BEGIN CREATE ROLE reader LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
           "GRANT SELECT ON cycles TO reader")
    rng = random.Random(19)
    total, next_id = 0, 1

    def insert(n: int) -> None:
        nonlocal total, next_id
        values = []
        for _ in range(n):
            total += rng.randint(1, 3)
            # pairs of rows share a timestamp: the tie-breaking key orders them
            values.append(f"({next_id}, timestamptz '2024-03-05 08:00:00+00' + "
                          f"interval '{next_id // 2} seconds', {total})")
            next_id += 1
        pg.sql("INSERT INTO cycles VALUES " + ", ".join(values))

    with killed_runs(tmp_path, lambda port: _config(pg, port), insert, _odoo_qty, rng) as run:
        wait_for(lambda: _odoo_qty(run.odoo_port) == total, 30,
                 f"Odoo to show the table's {total} parts (has {_odoo_qty(run.odoo_port)})")
        wait_for(lambda: _backlog(run.state) == 0, 10, "an empty backlog")
        time.sleep(1.0)   # nothing more comes: the count stays exact
        assert _odoo_qty(run.odoo_port) == total
