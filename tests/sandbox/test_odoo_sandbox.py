"""Behaviour of the Odoo sandbox beyond the captures: Odoo 17 rules, domains, persistence.

Every test talks to a real sandbox over loopback HTTP, as the gateway does.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.sandbox.odoo import OdooSandbox
from tests.sandbox.test_odoo_wire_replay import client, odoo, rpc, rpc_error  # noqa: F401 - fixtures

MO, WO, WC = 1, 1, 1


def _read(client: httpx.Client, model: str, rid: int, *fields: str) -> dict[str, Any]:
    (row,) = rpc(client, model, "read", [[rid]], {"fields": list(fields)})
    return row


# -- manufacturing rules ----------------------------------------------------------

def test_fresh_database_has_the_demo_master_data(client: httpx.Client) -> None:
    products = rpc(client, "product.product", "search_read", [[]], {"fields": ["name", "default_code"]})
    assert sorted((p["name"], p["default_code"]) for p in products) == [
        ("Demo Part", "PART-01"), ("Screw M4", "SCREW-M4"), ("Steel Bar", "STEEL-BAR")]
    apps = rpc(client, "ir.module.module", "search_read", [[["state", "=", "installed"]]], {"fields": ["name"]})
    assert {"mrp", "stock", "maintenance"} <= {a["name"] for a in apps}
    assert rpc(client, "mrp.workcenter", "search_read", [[["code", "=", "CNC-01"]]], {"fields": ["name"]}) == [
        {"id": 1, "name": "CNC-01 Machining"}]
    mo = _read(client, "mrp.production", MO, "name", "state", "product_qty", "qty_producing", "workorder_ids")
    assert mo == {"id": 1, "name": "WH/MO/00001", "state": "progress", "product_qty": 1000000.0,
                  "qty_producing": 0.0, "workorder_ids": [1]}
    wo = _read(client, "mrp.workorder", WO, "workcenter_id", "state", "qty_producing", "qty_production")
    assert wo == {"id": 1, "workcenter_id": [1, "CNC-01 Machining"], "state": "progress", "qty_producing": 0.0,
                  "qty_production": 1000000.0}
    assert rpc(client, "maintenance.equipment", "search_read", [[["serial_no", "=", "CNC-01"]]],
               {"fields": ["name"]}) == [{"id": 1, "name": "CNC-01"}]
    losses = rpc(client, "mrp.workcenter.productivity.loss", "read", [[1, 2, 7]], {"fields": ["name", "loss_type"]})
    assert [(r["name"], r["loss_type"]) for r in losses] == [
        ("Material Availability", "availability"), ("Equipment Failure", "availability"),
        ("Fully Productive Time", "productive")]


def test_workorder_qty_producing_write_reaches_the_manufacturing_order(client: httpx.Client) -> None:
    assert rpc(client, "mrp.workorder", "write", [[WO], {"qty_producing": 42}]) is True
    assert _read(client, "mrp.production", MO, "qty_producing")["qty_producing"] == 42.0
    rpc(client, "mrp.production", "write", [[MO], {"qty_producing": 50}])
    assert _read(client, "mrp.workorder", WO, "qty_producing")["qty_producing"] == 50.0


def test_workorder_qty_producing_zero_is_not_written_back_as_in_odoo(client: httpx.Client) -> None:
    rpc(client, "mrp.workorder", "write", [[WO], {"qty_producing": 7}])
    rpc(client, "mrp.workorder", "write", [[WO], {"qty_producing": 0}])
    assert _read(client, "mrp.production", MO, "qty_producing")["qty_producing"] == 7.0


def test_set_qty_producing_replies_without_result(client: httpx.Client) -> None:
    body = {"jsonrpc": "2.0", "method": "call", "id": 9, "params": {"service": "object", "method": "execute_kw",
            "args": ["sandbox", 2, "admin", "mrp.production", "set_qty_producing", [[MO]]]}}
    assert client.post("/jsonrpc", json=body).json() == {"jsonrpc": "2.0", "id": 9}


def test_productive_open_log_shows_the_workcenter_in_use_and_unblock_refuses(client: httpx.Client) -> None:
    rpc(client, "mrp.workcenter.productivity", "create", [{"workcenter_id": WC, "loss_id": 7}])
    assert _read(client, "mrp.workcenter", WC, "working_state")["working_state"] == "done"
    assert rpc_error(client, "mrp.workcenter", "unblock", [[WC]])["message"] == "It has already been unblocked."


def test_productivity_log_requires_a_loss_reason(client: httpx.Client) -> None:
    error = rpc_error(client, "mrp.workcenter.productivity", "create", [{"workcenter_id": WC}])
    assert error["name"] == "odoo.exceptions.ValidationError"
    assert "Model: Workcenter Productivity Log (mrp.workcenter.productivity)\nField: Loss Reason (loss_id)" \
        in error["message"]


def test_unknown_many2one_target_is_a_foreign_key_validation_error(client: httpx.Client) -> None:
    error = rpc_error(client, "maintenance.request", "create", [{"name": "x", "equipment_id": 99}])
    assert error["name"] == "odoo.exceptions.ValidationError"
    assert error["message"].endswith("Constraint: maintenance_request_equipment_id_fkey\n")


def test_batch_create_is_all_or_nothing(client: httpx.Client) -> None:
    before = rpc(client, "maintenance.request", "search_count", [[]])
    error = rpc_error(client, "maintenance.request", "create", [[{"name": "ok"}, {"maintenance_type": "corrective"}]])
    assert error["name"] == "odoo.exceptions.ValidationError"
    assert rpc(client, "maintenance.request", "search_count", [[]]) == before


def test_clearing_a_required_field_is_refused(client: httpx.Client) -> None:
    error = rpc_error(client, "mrp.workcenter", "write", [[WC], {"name": False}])
    assert "Field: Work Center (name)" in error["message"]
    assert _read(client, "mrp.workcenter", WC, "name")["name"] == "CNC-01 Machining"


def test_unlink_removes_and_a_second_unlink_is_a_missing_error(client: httpx.Client) -> None:
    rid = rpc(client, "maintenance.request", "create", [{"name": "to delete"}])
    assert rpc(client, "maintenance.request", "unlink", [[rid]]) is True
    assert rpc(client, "maintenance.request", "read", [[rid]]) == []
    assert rpc_error(client, "maintenance.request", "unlink", [[rid]])["name"] == "odoo.exceptions.MissingError"


def test_maintenance_request_defaults_and_stage(client: httpx.Client) -> None:
    rid = rpc(client, "maintenance.request", "create", [{"name": "alarm", "equipment_id": 1}])
    row = _read(client, "maintenance.request", rid, "stage_id", "maintenance_type", "priority", "request_date",
                "owner_user_id")
    assert row["stage_id"] == [1, "New Request"] and row["maintenance_type"] == "corrective"
    assert row["priority"] is False and len(row["request_date"]) == 10
    rpc(client, "maintenance.request", "write", [[rid], {"stage_id": 3}])
    assert _read(client, "maintenance.request", rid, "close_date")["close_date"] == row["request_date"]


def test_fields_get_lists_selection_keys(client: httpx.Client) -> None:
    desc = rpc(client, "maintenance.request", "fields_get", [["maintenance_type", "equipment_id"]],
               {"attributes": ["type", "selection", "relation", "string"]})
    assert desc["maintenance_type"] == {"type": "selection", "string": "Maintenance Type",
                                        "selection": [["corrective", "Corrective"], ["preventive", "Preventive"]]}
    assert desc["equipment_id"]["relation"] == "maintenance.equipment"


def test_name_search_and_display_name(client: httpx.Client) -> None:
    assert rpc(client, "product.product", "name_search", [], {"name": "demo"}) == [[1, "[PART-01] Demo Part"]]
    assert _read(client, "mrp.workorder", WO, "display_name")["display_name"] == "WH/MO/00001 - Machining"


def test_load_twice_keeps_one_record_and_updates_it(client: httpx.Client) -> None:
    fields = ["id", "name", "equipment_id/id", "priority"]
    rpc(client, "ir.model.data", "search", [[]])
    first = rpc(client, "maintenance.request", "load", [fields, [["linebridge.evt_a", "first", "", "1"]]])
    second = rpc(client, "maintenance.request", "load", [fields, [["linebridge.evt_a", "second", "", "3"]]])
    assert first["ids"] == second["ids"] and second["messages"] == []
    assert rpc(client, "maintenance.request", "search_count", [[["name", "in", ["first", "second"]]]]) == 1
    assert _read(client, "maintenance.request", first["ids"][0], "name", "priority") == {
        "id": first["ids"][0], "name": "second", "priority": "3"}
    refs = rpc(client, "ir.model.data", "search_read", [[["module", "=", "linebridge"]]], {"fields": ["name"]})
    assert [r["name"] for r in refs] == ["evt_a"]


def test_load_resolves_many2one_by_name_and_external_id(client: httpx.Client) -> None:
    res = rpc(client, "mrp.workcenter.productivity", "load", [
        ["id", "workcenter_id", "loss_id", "date_start"],
        [["linebridge.dt_1", "CNC-01 Machining", "Equipment Failure", "2026-11-23 07:00:00"]]])
    assert res["messages"] == [] and len(res["ids"]) == 1
    bad = rpc(client, "mrp.workcenter.productivity", "load", [
        ["id", "workcenter_id/id", "loss_id"], [["linebridge.dt_2", "linebridge.nope", "Equipment Failure"]]])
    assert bad["ids"] is False
    assert bad["messages"][0]["message"] == \
        "No matching record found for external id 'linebridge.nope' in field 'Work Center'"


def test_load_selection_accepts_labels_case_insensitively(client: httpx.Client) -> None:
    res = rpc(client, "maintenance.request", "load", [["name", "maintenance_type"], [["x", "preventive"],
                                                                                   ["y", "PREVENTIVE"]]])
    rows = rpc(client, "maintenance.request", "read", [res["ids"]], {"fields": ["maintenance_type"]})
    assert {r["maintenance_type"] for r in rows} == {"preventive"}


def test_access_rights_follow_the_user_groups(client: httpx.Client) -> None:
    uid = rpc(client, "res.users", "create", [{"name": "Operator", "login": "op", "password": "secret",
                                               "groups_id": [[6, 0, [1]]]}])
    assert rpc(client, "maintenance.request", "search_count", [[]], uid=uid, password="secret") >= 0
    body = {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {"service": "common", "method": "authenticate",
                                                                     "args": ["sandbox", "op", "secret", {}]}}
    assert client.post("/jsonrpc", json=body).json()["result"] == uid
    assert _read(client, "res.users", uid, "password")["password"] == ""


def test_session_authenticate_sets_a_cookie_and_refuses_bad_passwords(client: httpx.Client) -> None:
    def call(password: str) -> httpx.Response:
        return client.post("/web/session/authenticate", json={"jsonrpc": "2.0", "method": "call", "id": 1,
                           "params": {"db": "sandbox", "login": "admin", "password": password}})
    ok = call("admin")
    assert ok.json()["result"]["uid"] == 2 and ok.json()["result"]["db"] == "sandbox"
    assert "session_id=" in ok.headers["set-cookie"]
    assert call("nope").json()["error"]["data"]["name"] == "odoo.exceptions.AccessDenied"


# -- domains ------------------------------------------------------------------------

@pytest.fixture
def requests_for_domains(client: httpx.Client) -> dict[str, int]:
    values = [("Spindle alarm", "corrective", "3", 1), ("spindle check", "preventive", "1", False),
              ("Coolant low", "corrective", "2", 1), ("Door open", "corrective", False, False)]
    return {name: rpc(client, "maintenance.request", "create", [{
        "name": name, "maintenance_type": t, "priority": p, "equipment_id": e}]) for name, t, p, e in values}


@pytest.mark.parametrize(("domain", "expected"), [
    ([["name", "=", "Coolant low"]], {"Coolant low"}),
    ([["name", "!=", "Coolant low"]], {"Spindle alarm", "spindle check", "Door open"}),
    ([["name", "like", "pindle"]], {"Spindle alarm", "spindle check"}),
    ([["name", "like", "Spindle"]], {"Spindle alarm"}),
    ([["name", "ilike", "SPINDLE"]], {"Spindle alarm", "spindle check"}),
    ([["name", "not ilike", "spindle"]], {"Coolant low", "Door open"}),
    ([["name", "=like", "S%"]], {"Spindle alarm"}),
    ([["name", "=ilike", "s%"]], {"Spindle alarm", "spindle check"}),
    ([["priority", "in", ["2", "3"]]], {"Spindle alarm", "Coolant low"}),
    ([["priority", "not in", ["2", "3"]]], {"spindle check", "Door open"}),
    ([["priority", "=", False]], {"Door open"}),
    ([["priority", ">", "1"]], {"Spindle alarm", "Coolant low"}),
    ([["priority", "<=", "2"]], {"spindle check", "Coolant low"}),
    ([["equipment_id", "=", 1]], {"Spindle alarm", "Coolant low"}),
    ([["equipment_id", "=", False]], {"spindle check", "Door open"}),
    ([["equipment_id", "!=", 1]], {"spindle check", "Door open"}),
    ([["equipment_id", "ilike", "cnc"]], {"Spindle alarm", "Coolant low"}),
    ([["equipment_id.serial_no", "=", "CNC-01"]], {"Spindle alarm", "Coolant low"}),
    (["|", ["priority", "=", "3"], ["maintenance_type", "=", "preventive"]], {"Spindle alarm", "spindle check"}),
    (["!", ["maintenance_type", "=", "corrective"]], {"spindle check"}),
    ([["maintenance_type", "=", "corrective"], ["equipment_id", "=", 1]], {"Spindle alarm", "Coolant low"}),
    (["&", ["maintenance_type", "=", "corrective"], "!", ["equipment_id", "=", 1]], {"Door open"}),
])
def test_domain_operators(client: httpx.Client, requests_for_domains: dict[str, int], domain: list,
                          expected: set[str]) -> None:
    full = ["&", ["id", "in", list(requests_for_domains.values())]] + (
        domain if len(domain) == 1 or domain[0] in ("|", "!", "&") else ["&"] + domain)
    rows = rpc(client, "maintenance.request", "search_read", [full], {"fields": ["name"]})
    assert {r["name"] for r in rows} == expected


def test_bad_domains_and_orders_are_value_errors(client: httpx.Client) -> None:
    assert rpc_error(client, "maintenance.request", "search", [[["name", "~", "x"]]])["message"] == \
        "Invalid leaf ('name', '~', 'x')"
    assert rpc_error(client, "maintenance.request", "search", [[]], {"order": "nope desc"})["message"] == \
        "Invalid field 'nope' on model 'maintenance.request'"
    assert rpc_error(client, "maintenance.request", "search", [[]], {"order": "name; drop"})["name"] == \
        "builtins.ValueError"


def test_search_orders_limits_and_offsets(client: httpx.Client, requests_for_domains: dict[str, int]) -> None:
    ids = rpc(client, "maintenance.request", "search", [[]], {"order": "name asc", "limit": 2, "offset": 1})
    names = [r["name"] for r in rpc(client, "maintenance.request", "read", [ids], {"fields": ["name"]})]
    assert names == ["Door open", "Spindle alarm"]
    assert rpc(client, "maintenance.request", "search_count", [[["priority", "!=", False]]]) == 3


# -- persistence --------------------------------------------------------------------

def test_data_survives_a_stop_and_start(tmp_path: Path) -> None:
    data = tmp_path / "odoo.json"
    sb = OdooSandbox(port=0, data_path=data)
    sb.start()
    with httpx.Client(base_url=sb.url, timeout=10) as c:
        rpc(c, "mrp.workorder", "write", [[WO], {"qty_producing": 17}])
        rpc(c, "maintenance.request", "load", [["id", "name"], [["linebridge.evt_p", "kept"]]])
    sb.stop()
    sb = OdooSandbox(port=0, data_path=data)
    sb.start()
    try:
        with httpx.Client(base_url=sb.url, timeout=10) as c:
            assert _read(c, "mrp.production", MO, "qty_producing")["qty_producing"] == 17.0
            again = rpc(c, "maintenance.request", "load", [["id", "name"], [["linebridge.evt_p", "kept"]]])
            assert rpc(c, "maintenance.request", "search_count", [[["name", "=", "kept"]]]) == 1
            assert again["ids"] == rpc(c, "maintenance.request", "search", [[["name", "=", "kept"]]])
            assert rpc(c, "mrp.production", "create", [{"product_id": 1}]) == 2
    finally:
        sb.stop()


def test_failed_call_leaves_nothing_behind_on_disk(tmp_path: Path) -> None:
    data = tmp_path / "odoo.json"
    sb = OdooSandbox(port=0, data_path=data)
    sb.start()
    try:
        saved = data.read_bytes()
        with httpx.Client(base_url=sb.url, timeout=10) as c:
            rpc_error(c, "maintenance.request", "create", [[{"name": "a"}, {"name": False}]])
        assert data.read_bytes() == saved
    finally:
        sb.stop()


def _spawn(data: Path, port: int) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        from gateway.sandbox.odoo import OdooSandbox
        OdooSandbox(port={port}, data_path={str(data)!r}).serve_forever()
    """)
    return subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2])


def _wait_listening(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert proc.poll() is None, "sandbox exited"
        try:
            httpx.post(url + "/jsonrpc", json={"params": {"service": "common", "method": "version", "args": []}},
                       timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("sandbox did not listen")


def test_acknowledged_writes_survive_kill_9_and_sigterm_exits_cleanly(tmp_path: Path) -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data, url = tmp_path / "odoo.json", f"http://127.0.0.1:{port}"
    proc = _spawn(data, port)
    try:
        _wait_listening(url, proc)
        with httpx.Client(base_url=url, timeout=10) as c:
            rpc(c, "mrp.workorder", "write", [[WO], {"qty_producing": 123}])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc = _spawn(data, port)
        _wait_listening(url, proc)
        proxy = xmlrpc.client.ServerProxy(url + "/xmlrpc/2/object")
        rows = proxy.execute_kw("sandbox", 2, "admin", "mrp.production", "read", [[MO]], {"fields": ["qty_producing"]})
        assert rows[0]["qty_producing"] == 123.0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert json.loads(data.read_text())["format"] == "linebridge.odoo-sandbox/1"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
