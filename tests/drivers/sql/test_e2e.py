"""End to end: PostgreSQL rows -> `linebridge run` (sql driver, counter rule) -> sandbox Odoo,
exactly once across kill -9 of the gateway."""
from __future__ import annotations

import random
import signal
import time

from gateway.demo import demo_config_text
from tests.e2e.test_kill9 import _backlog, _odoo_qty
from tests.helpers import free_port, linebridge, port_open, stop, wait_for


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

    odoo_port = free_port()
    cfg_path = tmp_path / "gateway.toml"
    cfg_path.write_text(_config(pg, odoo_port))
    state, log = tmp_path / "state", tmp_path / "gateway.log"
    odoo = linebridge(["sandbox", "odoo", "--port", str(odoo_port), "--data",
                       str(tmp_path / "odoo.json")], tmp_path / "odoo.log")
    gw = None
    try:
        wait_for(lambda: port_open(odoo_port), 20, "the Odoo sandbox to listen")
        for _ in range(3):
            insert(40)
            before = _odoo_qty(odoo_port)
            gw = linebridge(["run", "--config", str(cfg_path), "--state-dir", str(state)], log)
            wait_for(lambda: _odoo_qty(odoo_port) > before, 20, "the gateway to deliver parts")
            time.sleep(rng.uniform(0.0, 0.3))   # land the kill at a random point of the flow
            gw.send_signal(signal.SIGKILL)
            gw.wait(timeout=10)
        insert(40)
        gw = linebridge(["run", "--config", str(cfg_path), "--state-dir", str(state)], log)
        wait_for(lambda: _odoo_qty(odoo_port) == total, 30,
                 f"Odoo to show the table's {total} parts (has {_odoo_qty(odoo_port)})")
        wait_for(lambda: _backlog(state) == 0, 10, "an empty backlog")
        time.sleep(1.0)
        assert _odoo_qty(odoo_port) == total
        assert stop(gw, signal.SIGTERM, timeout=10) == 0
    finally:
        for proc in (gw, odoo):
            if proc is not None and proc.poll() is None:
                stop(proc, signal.SIGKILL)
