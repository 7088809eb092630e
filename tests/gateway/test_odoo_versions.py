"""Every event kind over every wire: JSON-RPC and XML-RPC on Odoo 16/17, JSON-2 on 19; and `odoo check`."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from gateway.config import AlarmCode, OdooSinkConfig
from gateway.demo import demo_config_text
from gateway.events import Event, event_id
from gateway.sandbox.odoo import OdooSandbox
from gateway.sinks.odoo import OdooClient, OdooSink
from store.queue import Store

CTX = {"machine": "CNC-01", "work_center": "CNC-01", "equipment": "CNC-01"}


def _ev(kind: str, key: str, data: dict, ts: str = "2026-11-23T07:00:00.000Z") -> dict:
    return Event(id=event_id("gw", "cnc01/x", key), kind=kind, ts=ts, gateway="gw",
                 source={"device": "cnc01", "tag": "x"}, data=data, context=dict(CTX)).to_dict()


@pytest.mark.parametrize("version,protocol,expected", [
    ("16.0", "xmlrpc", "xmlrpc"), ("17.0", "auto", "jsonrpc"), ("17.0", "xmlrpc", "xmlrpc"),
    ("19.0", "auto", "json2"), ("19.0", "jsonrpc", "jsonrpc")])
def test_each_kind_lands_once_whatever_the_wire(tmp_path, version, protocol, expected):
    sb = OdooSandbox(host="127.0.0.1", port=0, data_path=None, api_key="k", version=version)
    sb.start()
    try:
        store = Store(tmp_path / "s", sinks=["odoo"])
        start = _ev("downtime_start", "d", {"code": 101})
        events = [_ev("production", "p1", {"quantity": 3}), _ev("production", "p2", {"quantity": 4}),
                  _ev("scrap", "s", {"quantity": 1}), _ev("alarm", "a", {"code": 101}), start,
                  _ev("downtime_end", "e", {"code": 101, "start_event_id": start["id"]},
                      ts="2026-11-23T07:30:00.000Z")]
        store.append(events)
        cfg = OdooSinkConfig("odoo", sb.url, "sandbox", "admin", "k", protocol=protocol, timeout=5.0,
                             rate=500.0, alarm_codes={101: AlarmCode("Spindle overload", "3")})

        async def go():
            sink = OdooSink(cfg, store)
            batch = store.read("odoo")
            real_ack, store.ack = store.ack, lambda *a, **k: None
            await sink.deliver(batch)  # delivered, then "crashed" before the ack
            store.ack = real_ack
            await sink.deliver(batch)  # the same batch again after the restart
            used = sink.raw_client.protocol
            await sink.raw_client.close()
            c = OdooClient(sb.url, "sandbox", "admin", "k")
            try:
                wo = await c.execute_kw("mrp.workorder", "search_read", [[]], {"fields": ["qty_producing"]})
                scraps = await c.execute_kw("stock.scrap", "search_read", [[]], {"fields": ["state"]})
                reqs = await c.execute_kw("maintenance.request", "search_count", [[]])
                logs = await c.execute_kw("mrp.workcenter.productivity", "search_read", [[]],
                                          {"fields": ["date_end"]})
            finally:
                await c.close()
            return used, sink.stats, wo, scraps, reqs, logs

        used, stats, wo, scraps, reqs, logs = asyncio.run(go())
    finally:
        sb.stop()
    assert used == expected
    assert stats.dead_lettered == 0 and store.backlog("odoo") == 0
    assert wo[0]["qty_producing"] == 7.0
    assert [s["state"] for s in scraps] == ["done", "done"] and reqs == 1  # one scrap per component
    assert [lg["date_end"] for lg in logs] == ["2026-11-23 07:30:00"]


def _check(tmp_path, config: str) -> subprocess.CompletedProcess:
    path = tmp_path / "plant.toml"
    path.write_text(config)
    return subprocess.run([sys.executable, "-m", "gateway.cli", "odoo", "check", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_odoo_check_passes_on_the_demo_setup_and_names_each_blocker(tmp_path):
    sb = OdooSandbox(host="127.0.0.1", port=0, data_path=None, api_key="admin")
    sb.start()
    try:
        good = demo_config_text().replace("http://127.0.0.1:8069", sb.url)
        out = _check(tmp_path, good)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "OK      login 'admin' on database 'sandbox' accepted" in out.stdout
        assert "OK      app maintenance installed" in out.stdout
        assert "OK      mrp.workorder: read, write allowed" in out.stdout
        assert out.stdout.strip().endswith("ready: no blockers")

        bad = (good.replace('work_center = "CNC-01"', 'work_center = "CNC-99"')
               .replace('scrap_location = "WH/Stock"', 'scrap_location = "WH/Nowhere"'))
        out = _check(tmp_path, bad)
        assert out.returncode == 1
        assert "BLOCKER machine CNC-01: no work center with code 'CNC-99' in Odoo" in out.stdout
        assert "BLOCKER no stock location 'WH/Nowhere' in Odoo" in out.stdout

        viewer = good.replace('login = "admin"', 'login = "viewer"').replace('api_key = "admin"', 'api_key = "viewer"')
        out = _check(tmp_path, viewer)
        assert out.returncode == 1 and "BLOCKER mrp.workorder: the integration user may not read, write" in out.stdout

        wrong = good.replace('api_key = "admin"', 'api_key = "nope"')
        out = _check(tmp_path, wrong)
        assert out.returncode == 1 and "BLOCKER login 'admin' on database 'sandbox'" in out.stdout
    finally:
        sb.stop()
    out = _check(tmp_path, good)
    assert out.returncode == 1 and "BLOCKER cannot reach Odoo" in out.stdout


@pytest.mark.parametrize("version,field", [("16.0", "quantity_done"), ("17.0", "quantity"), ("19.0", "quantity")])
def test_consumption_sets_the_component_move_absolutely_and_once(tmp_path, version, field):
    sb = OdooSandbox(host="127.0.0.1", port=0, data_path=None, api_key="k", version=version)
    sb.start()
    try:
        store = Store(tmp_path / "s", sinks=["odoo"])
        store.append([_ev("consumption", "c1", {"material": "STEEL-BAR", "quantity": 2.5, "unit": "kg"}),
                      _ev("consumption", "c2", {"material": "STEEL-BAR", "quantity": 1.5, "unit": "kg"}),
                      _ev("consumption", "c3", {"material": "NOPE", "quantity": 1})])
        cfg = OdooSinkConfig("odoo", sb.url, "sandbox", "admin", "k", timeout=5.0, rate=500.0)

        async def go():
            sink = OdooSink(cfg, store)
            batch = store.read("odoo")
            real_ack, store.ack = store.ack, lambda *a, **k: None
            await sink.deliver(batch)
            store.ack = real_ack
            await sink.deliver(batch)
            await sink.raw_client.close()
            c = OdooClient(sb.url, "sandbox", "admin", "k")
            try:
                (pid,) = await c.execute_kw("product.product", "search", [[["default_code", "=", "STEEL-BAR"]]])
                return await c.execute_kw("stock.move", "search_read", [[["product_id", "=", pid]]],
                                          {"fields": [field] + (["picked"] if field == "quantity" else [])})
            finally:
                await c.close()

        (move,) = asyncio.run(go())
    finally:
        sb.stop()
    assert move[field] == 4.0 and move.get("picked", True) is True
    (letter,) = store.dead_letters("odoo")
    assert "no product with internal reference 'NOPE'" in letter["error"]


def test_a_quality_result_is_one_note_on_the_order_even_when_delivered_twice(tmp_path):
    sb = OdooSandbox(host="127.0.0.1", port=0, data_path=None, api_key="k")
    sb.start()
    try:
        store = Store(tmp_path / "s", sinks=["odoo"])
        store.append([_ev("quality_result", "q", {"characteristic": "bore diameter", "value": 12.07,
                                                  "unit": "mm", "low": 11.95, "high": 12.05, "passed": False})])
        cfg = OdooSinkConfig("odoo", sb.url, "sandbox", "admin", "k", timeout=5.0, rate=500.0)

        async def go():
            sink = OdooSink(cfg, store)
            batch = store.read("odoo")
            real_ack, store.ack = store.ack, lambda *a, **k: None
            await sink.deliver(batch)
            store.ack = real_ack
            await sink.deliver(batch)
            await sink.raw_client.close()
            c = OdooClient(sb.url, "sandbox", "admin", "k")
            try:
                return await c.execute_kw("mail.message", "search_read",
                                          [[["model", "=", "mrp.production"], ["body", "ilike", "Quality"]]],
                                          {"fields": ["body", "res_id"]})
            finally:
                await c.close()

        notes = asyncio.run(go())
    finally:
        sb.stop()
    (n,) = notes
    assert "Quality FAIL: bore diameter = 12.07 mm (limits 11.95 .. 12.05)" in n["body"] and n["res_id"] == 1


def test_odoo_check_over_json2_on_19_has_no_false_blockers(tmp_path):
    """check_access_rights is a model method (no ids) and deprecated from 18: no 'cannot call ... with ids'."""
    sb = OdooSandbox(host="127.0.0.1", port=0, data_path=None, api_key="admin", version="19.0")
    sb.start()
    try:
        good = demo_config_text().replace("http://127.0.0.1:8069", sb.url)
        out = _check(tmp_path, good)  # protocol auto: JSON-2 on 19
    finally:
        sb.stop()
    assert "with ids" not in out.stdout, out.stdout
    assert "OK      mrp.workorder: read, write allowed" in out.stdout
    assert out.returncode == 0, out.stdout + out.stderr


def test_odoo_check_names_the_scrap_odoo_would_refuse(tmp_path):
    """The finished product has no stock while its order runs (real Odoo 17): the old mode would dead-letter."""
    sb = OdooSandbox(host="127.0.0.1", port=0, data_path=None, api_key="admin")
    sb.start()
    try:
        asyncio.run(_rpc(sb.url, "stock.quant", "write", [[1], {"quantity": 0.0}]))  # PART-01: none on hand
        good = demo_config_text().replace("http://127.0.0.1:8069", sb.url)
        out = _check(tmp_path, good)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "a bad part scraps 4 x [SCREW-M4] Screw M4 of WH/MO/00001" in out.stdout
        old = good.replace('scrap_location = "WH/Stock"', 'scrap_location = "WH/Stock"\nscrap_mode = "validate"')
        out = _check(tmp_path, old)
        assert out.returncode == 1
        assert ("BLOCKER machine CNC-01: finished product [PART-01] Demo Part has no stock in WH/Stock while "
                "WH/MO/00001 runs: Odoo would answer each scrap with its insufficient-quantity wizard") in out.stdout
    finally:
        sb.stop()


async def _rpc(url: str, model: str, method: str, args: list, kw: dict | None = None):
    c = OdooClient(url, "sandbox", "admin", "admin")
    try:
        return await c.execute_kw(model, method, args, kw)
    finally:
        await c.close()
