"""Quality results become OCA inspections where quality_control_oca is installed, exactly once, else notes."""
from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gateway.cli import _parser
from gateway.config import OdooSinkConfig, parse
from gateway.demo import demo_config_text
from gateway.errors import DeliveryError, TransientDeliveryError
from gateway.events import Event, event_id
from gateway.sandbox.odoo import OdooSandbox
from gateway.sinks.odoo import OdooClient, OdooSink
from gateway.sinks.odoo.check import check
from store.queue import Store

CTX = {"machine": "CNC-01", "work_center": "CNC-01", "equipment": "CNC-01"}
BORE = {"characteristic": "bore diameter", "unit": "mm", "low": 11.95, "high": 12.05}
OCA = ["quality_control_oca"]


@pytest.fixture()
def odoo(tmp_path):
    sb = OdooSandbox(host="127.0.0.1", port=0, api_key="k", modules=OCA)
    sb.start()
    yield sb
    sb.stop()


def _ev(key: str, value: float, **data: Any) -> dict:
    d = {**BORE, "value": value, **data}
    d["passed"] = (d.get("low") is None or value >= d["low"]) and (d.get("high") is None or value <= d["high"])
    return Event(id=event_id("gw", "cnc01/bore", key), kind="quality_result", ts="2026-11-23T07:00:00.000Z",
                 gateway="gw", source={"device": "cnc01", "tag": "bore"}, data=d, context=dict(CTX)).to_dict()


def _cfg(url: str, **kw: Any) -> OdooSinkConfig:
    return OdooSinkConfig("odoo", url, "sandbox", "admin", "k", timeout=5.0, rate=500.0, **kw)


def _call(url: str, model: str, method: str, args: list, kw: dict | None = None) -> Any:
    async def go():
        c = OdooClient(url, "sandbox", "admin", "k")
        try:
            return await c.execute_kw(model, method, args, kw)
        finally:
            await c.close()
    return asyncio.run(go())


def _deliver(cfg: OdooSinkConfig, store: Store, batch: list | None = None, ack: bool = True) -> OdooSink:
    async def go():
        sink = OdooSink(cfg, store)
        real_ack = store.ack
        if not ack:
            store.ack = lambda *a, **k: None  # the gateway dies before the store acknowledges
        try:
            await sink.deliver(batch if batch is not None else store.read("odoo"))
        finally:
            store.ack = real_ack
            await sink.raw_client.close()
        return sink
    return asyncio.run(go())


def _inspections(url: str) -> list[dict]:
    return _call(url, "qc.inspection", "search_read", [[]],
                 {"fields": ["name", "state", "success", "object_id", "product_id", "production_id", "test",
                             "inspection_lines", "internal_notes"]})


def _lines(url: str) -> list[dict]:
    return _call(url, "qc.inspection.line", "search_read", [[]],
                 {"fields": ["inspection_id", "name", "quantitative_value", "min_value", "max_value", "uom_id",
                             "test_uom_id", "test_line", "question_type", "success"]})


# -- the sandbox plays OCA's module only when it is installed --------------------------------------

def test_without_the_module_odoo_has_no_qc_models_and_the_option_installs_them(odoo):
    plain = OdooSandbox(host="127.0.0.1", port=0, api_key="k")
    plain.start()
    try:
        with pytest.raises(DeliveryError, match="Object qc.inspection doesn't exist"):
            _call(plain.url, "qc.inspection", "search", [[]])
        (row,) = _call(plain.url, "ir.module.module", "search_read", [[["name", "=like", "quality%"]]],
                       {"fields": ["name", "state"]})
        assert (row["name"], row["state"]) == ("quality_control_oca", "uninstalled")
    finally:
        plain.stop()
    rows = _call(odoo.url, "ir.module.module", "search_read", [[["name", "=like", "quality%"]]],
                 {"fields": ["name", "state"]})
    assert {(r["name"], r["state"]) for r in rows} == {
        ("quality_control_oca", "installed"), ("quality_control_stock_oca", "installed"),
        ("quality_control_mrp_oca", "installed")}  # stock and mrp are there: OCA's auto_install companions
    (test,) = _call(odoo.url, "qc.test", "search_read", [[]], {"fields": ["name", "type", "test_lines"]})
    questions = _call(odoo.url, "qc.test.question", "read", [test["test_lines"]],
                      {"fields": ["name", "type", "min_value", "max_value", "uom_id"]})
    assert test["type"] == "generic" and questions[0]["name"] == "bore diameter"
    assert (questions[0]["min_value"], questions[0]["max_value"], questions[0]["uom_id"][1]) == (11.95, 12.05, "mm")
    assert _parser().parse_args(["sandbox", "odoo", "--with-module", "quality_control_oca"]).with_module == OCA
    with pytest.raises(ValueError, match="cannot install quality_control"):
        OdooSandbox(modules=["quality_control"])


def test_an_installed_module_stays_installed_in_a_persisted_database(tmp_path):
    first = OdooSandbox(host="127.0.0.1", port=0, api_key="k", data_path=tmp_path / "odoo.json", modules=OCA)
    first.start()
    first.stop()
    again = OdooSandbox(host="127.0.0.1", port=0, api_key="k", data_path=tmp_path / "odoo.json")
    again.start()
    try:
        assert _call(again.url, "qc.test", "search_count", [[]]) == 1
    finally:
        again.stop()


def test_inspections_follow_oca_rules(odoo):
    with pytest.raises(DeliveryError, match="Wrong value for qc.inspection.object_id: 'res.users,2'"):
        _call(odoo.url, "qc.inspection", "create", [{"object_id": "res.users,2"}])
    bare = _call(odoo.url, "qc.inspection", "create", [{"object_id": "mrp.production,1"}])
    with pytest.raises(DeliveryError, match="You must first set the test to perform."):
        _call(odoo.url, "qc.inspection", "action_todo", [[bare]])
    iid = _call(odoo.url, "qc.inspection", "create", [{"object_id": "mrp.production,1", "test": 1,
                                                       "inspection_lines": [[0, 0, {
                                                           "name": "bore diameter", "question_type": "quantitative",
                                                           "quantitative_value": 12.0, "min_value": 11.95,
                                                           "max_value": 12.05}]]}])
    _call(odoo.url, "qc.inspection", "action_todo", [[iid]])
    with pytest.raises(DeliveryError, match="You should provide a unit of measure for quantitative questions."):
        _call(odoo.url, "qc.inspection", "action_confirm", [[iid]])
    (mm,) = _call(odoo.url, "uom.uom", "search", [[["name", "=", "mm"]]])
    (line,) = _call(odoo.url, "qc.inspection", "read", [[iid]], {"fields": ["inspection_lines"]})[0][
        "inspection_lines"]
    _call(odoo.url, "qc.inspection.line", "write", [[line], {"uom_id": mm, "test_uom_id": mm}])
    _call(odoo.url, "qc.inspection", "action_confirm", [[iid]])
    with pytest.raises(DeliveryError, match="You cannot remove an inspection that is not in draft state."):
        _call(odoo.url, "qc.inspection", "unlink", [[iid]])
    rows = _call(odoo.url, "qc.inspection", "read", [[bare, iid]],
                 {"fields": ["name", "state", "success", "product_id", "production_id"]})
    assert [(r["name"], r["state"], r["success"]) for r in rows] == [
        ("QC-000001", "draft", True), ("QC-000002", "success", True)]  # no lines: OCA's all([]) is a success
    assert rows[1]["product_id"][1] == "[PART-01] Demo Part"
    assert rows[1]["production_id"] == [1, "WH/MO/00001"]
    with pytest.raises(DeliveryError, match="minimum value can't be higher than maximum value"):
        _call(odoo.url, "qc.test.question", "create", [{"name": "x", "type": "quantitative", "min_value": 2,
                                                        "max_value": 1}])
    body = {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
        "service": "object", "method": "execute_kw",
        "args": ["sandbox", 3, "viewer", "qc.inspection", "search", [[]]]}}
    error = httpx.post(odoo.url + "/jsonrpc", json=body).json()["error"]["data"]
    assert error["name"] == "odoo.exceptions.AccessError" and "Quality control/User" in error["message"]


# -- the sink ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("version,protocol", [("17.0", "auto"), ("16.0", "xmlrpc"), ("19.0", "auto")])
def test_a_quality_result_becomes_one_inspection_of_the_order_in_success_or_failed(tmp_path, version, protocol):
    sb = OdooSandbox(host="127.0.0.1", port=0, api_key="k", version=version, modules=OCA)
    sb.start()
    try:
        store = Store(tmp_path / "s", sinks=["odoo"])
        store.append([_ev("bad", 12.07), _ev("good", 12.0), _ev("edge", 12.05)])
        sink = _deliver(_cfg(sb.url, protocol=protocol), store)
        inspections, lines = _inspections(sb.url), _lines(sb.url)
    finally:
        sb.stop()
    assert sink.stats.dead_lettered == 0 and store.backlog("odoo") == 0
    assert [(i["name"], i["state"], i["success"]) for i in inspections] == [
        ("QC-000001", "failed", False), ("QC-000002", "success", True), ("QC-000003", "success", True)]
    for i in inspections:
        assert i["object_id"] == "mrp.production,1" and i["production_id"] == [1, "WH/MO/00001"]
        assert i["product_id"][1] == "[PART-01] Demo Part" and i["test"][1] == "PART-01 final inspection"
        assert len(i["inspection_lines"]) == 1 and "[Linebridge event evt_" in i["internal_notes"]
    assert [(ln["quantitative_value"], ln["min_value"], ln["max_value"], ln["success"]) for ln in lines] == [
        (12.07, 11.95, 12.05, False), (12.0, 11.95, 12.05, True), (12.05, 11.95, 12.05, True)]
    assert all(ln["uom_id"][1] == ln["test_uom_id"][1] == "mm" and ln["test_line"][1] == "bore diameter"
               and ln["question_type"] == "quantitative" for ln in lines)


def test_a_quality_result_delivered_twice_is_still_one_inspection(odoo, tmp_path):
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("q", 12.07)])
    batch = store.read("odoo")
    _deliver(_cfg(odoo.url), store, batch, ack=False)
    _deliver(_cfg(odoo.url), store, batch)  # the restarted gateway delivers the same batch again
    (inspection,) = _inspections(odoo.url)
    assert inspection["state"] == "failed" and len(_lines(odoo.url)) == 1
    assert store.backlog("odoo") == 0 and not store.dead_letters("odoo")


@pytest.mark.parametrize("method,committed", [("action_todo", False), ("action_confirm", True),
                                              ("action_approve", True)])
def test_a_crash_between_create_and_confirm_ends_with_one_confirmed_inspection(odoo, tmp_path, monkeypatch,
                                                                                method, committed):
    """The connection dies at one step after `load` (before the call, or after Odoo committed it)."""
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("q", 12.2)])
    batch = store.read("odoo")
    real = OdooClient.execute_kw

    async def dies_at_the_step(self, model, name, args, kwargs=None):
        if name == method:
            if committed:
                await real(self, model, name, args, kwargs)
            raise TransientDeliveryError(f"connection reset during {name}")
        return await real(self, model, name, args, kwargs)

    monkeypatch.setattr(OdooClient, "execute_kw", dies_at_the_step)
    with pytest.raises(TransientDeliveryError):
        _deliver(_cfg(odoo.url), store, batch)
    monkeypatch.setattr(OdooClient, "execute_kw", real)
    (left,) = _inspections(odoo.url)
    assert left["state"] == {"action_todo": "draft", "action_confirm": "waiting", "action_approve": "failed"}[method]
    _deliver(_cfg(odoo.url), store, batch)  # the restarted gateway carries on from the state it reads
    (inspection,) = _inspections(odoo.url)
    assert inspection["state"] == "failed" and len(_lines(odoo.url)) == 1
    assert store.backlog("odoo") == 0 and not store.dead_letters("odoo")


def test_a_configured_test_is_used_and_unknown_tests_or_units_are_dead_letters(odoo, tmp_path):
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("r", 0.4, characteristic="roughness", unit="mm", low=None, high=0.8)])
    _deliver(_cfg(odoo.url, quality_test="PART-01 final inspection"), store)
    (inspection,) = _inspections(odoo.url)
    (line,) = _lines(odoo.url)
    assert inspection["state"] == "success" and inspection["test"][1] == "PART-01 final inspection"
    assert line["test_line"] is False and (line["min_value"], line["max_value"]) == (0.0, 0.8)  # an open low limit
    store.append([_ev("t", 12.0)])
    _deliver(_cfg(odoo.url, quality_test="Nope"), store)
    store.append([_ev("u", 12.0, unit="µm"), _ev("v", 3.0, characteristic="hardness")])
    _deliver(_cfg(odoo.url), store)
    errors = [letter["error"] for letter in store.dead_letters("odoo")]
    assert any("no quality control test 'Nope' in Odoo (qc.test.name)" in e for e in errors)
    assert any("no unit of measure 'µm' in Odoo (uom.uom.name)" in e for e in errors)
    assert any("no quality control test asks 'hardness'" in e for e in errors)
    assert len(_inspections(odoo.url)) == 1


def test_without_the_mrp_extension_the_inspection_references_the_product_and_names_the_order(odoo, tmp_path):
    ids = _call(odoo.url, "ir.module.module", "search", [[["name", "=", "quality_control_mrp_oca"]]])
    _call(odoo.url, "ir.module.module", "write", [ids, {"state": "uninstalled"}])
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("q", 12.0)])
    _deliver(_cfg(odoo.url), store)
    (inspection,) = _inspections(odoo.url)
    assert inspection["object_id"] == "product.product,1" and inspection["product_id"][1] == "[PART-01] Demo Part"
    assert inspection["state"] == "success" and inspection["internal_notes"].endswith("for WH/MO/00001")


def test_without_the_module_a_quality_result_is_still_a_note_on_the_order(tmp_path):
    sb = OdooSandbox(host="127.0.0.1", port=0, api_key="k")
    sb.start()
    try:
        store = Store(tmp_path / "s", sinks=["odoo"])
        store.append([_ev("q", 12.07)])
        _deliver(_cfg(sb.url, quality_test="PART-01 final inspection"), store)
        notes = _call(sb.url, "mail.message", "search_read", [[["model", "=", "mrp.production"]]],
                      {"fields": ["body", "res_id"]})
    finally:
        sb.stop()
    (n,) = notes
    assert "Quality FAIL: bore diameter = 12.07 mm (limits 11.95 .. 12.05)" in n["body"] and n["res_id"] == 1
    assert store.backlog("odoo") == 0 and not store.dead_letters("odoo")


QUALITY_RULE = '''
[devices.cnc01.tags.bore]
function = "holding"
address = 6
type = "uint16"

[rules.cnc01_bore]
type = "threshold"
device = "cnc01"
tag = "bore"
emit = "quality_result"
characteristic = "bore diameter"
unit = "mm"
low = 11.95
high = 12.05
'''


def _findings(url: str, test: str | None) -> list[str]:
    text = demo_config_text().replace("http://127.0.0.1:8069", url).replace('api_key = "admin"', 'api_key = "k"')
    text = text.replace("[sinks.odoo]\n", QUALITY_RULE + "\n[sinks.odoo]\n")
    if test:
        text = text.replace('scrap_location = "WH/Stock"', f'scrap_location = "WH/Stock"\nquality_test = "{test}"')
    cfg = parse(text)
    assert cfg.sinks["odoo"].quality_test == test
    return [str(f) for f in asyncio.run(check(cfg, cfg.sinks["odoo"]))]


def test_odoo_check_says_where_quality_results_go_and_that_the_test_exists(odoo):
    found = _findings(odoo.url, "PART-01 final inspection")
    assert "OK      quality_control_oca installed: quality results become inspections (qc.inspection)" in found
    assert "OK      qc.inspection: create, read, write allowed" in found
    assert "OK      quality test 'PART-01 final inspection' exists" in found
    assert "BLOCKER no quality control test 'Nope' in Odoo (qc.test.name)" in _findings(odoo.url, "Nope")
    plain = OdooSandbox(host="127.0.0.1", port=0, api_key="k")
    plain.start()
    try:
        found = _findings(plain.url, None)
    finally:
        plain.stop()
    assert ("WARN    quality_control_oca is not installed: quality results become notes on the manufacturing "
            "order") in found
    assert not any(f.startswith("BLOCKER") for f in found)
