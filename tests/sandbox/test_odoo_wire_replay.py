"""Replays the Odoo 17 wire captures (tests/fixtures/odoo-wire) against the Odoo sandbox.

Each test sends a captured request (database `mes` renamed `sandbox`, record ids
mapped to the sandbox's own records) and checks the reply: errors and faults
byte-identical to the capture, results with the capture's shape (or equal).
"""
from __future__ import annotations

import json
import xmlrpc.client
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from gateway.sandbox.odoo import OdooSandbox

WIRE = Path(__file__).resolve().parents[1] / "fixtures" / "odoo-wire"


@pytest.fixture
def odoo() -> Iterator[OdooSandbox]:
    """A fresh sandbox (demo data, no persistence) on an ephemeral loopback port."""
    sb = OdooSandbox(host="127.0.0.1", port=0)
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def client(odoo: OdooSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=odoo.url, timeout=10) as c:
        yield c


def rpc(client: httpx.Client, model: str, method: str, args: list[Any], kw: dict[str, Any] | None = None,
        uid: int = 2, password: str = "admin") -> Any:
    """execute_kw over JSON-RPC; returns the result or raises AssertionError with the error."""
    body = {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
        "service": "object", "method": "execute_kw",
        "args": ["sandbox", uid, password, model, method, args] + ([kw] if kw is not None else [])}}
    reply = client.post("/jsonrpc", json=body).json()
    assert "error" not in reply, reply["error"]["data"]["message"]
    return reply.get("result")


def rpc_error(client: httpx.Client, model: str, method: str, args: list[Any],
              kw: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
        "service": "object", "method": "execute_kw",
        "args": ["sandbox", 2, "admin", model, method, args] + ([kw] if kw is not None else [])}}
    reply = client.post("/jsonrpc", json=body).json()
    assert "error" in reply, reply
    return reply["error"]["data"]


def capture(name: str) -> dict[str, Any]:
    return json.loads((WIRE / f"{name}.json").read_text())


def _fix_args(args: list[Any], adapt: Callable[[list[Any]], None] | None) -> None:
    if args and args[0] == "mes":
        args[0] = "sandbox"
    if adapt:
        adapt(args)


def send(client: httpx.Client, cap: dict[str, Any], adapt: Callable[[list[Any]], None] | None = None) -> httpx.Response:
    """POST the captured request, with the database renamed and ``adapt`` applied to the RPC args."""
    req = cap["request"]
    body: str = req["body"]
    if cap["protocol"] == "jsonrpc":
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        params = data.get("params") if isinstance(data, dict) else None
        if isinstance(params, dict) and isinstance(params.get("args"), list):
            _fix_args(params["args"], adapt)
            body = json.dumps(data)
    else:
        try:
            params, method = xmlrpc.client.loads(body)
        except Exception:  # noqa: BLE001 - malformed bodies are sent as captured
            pass
        else:
            args = list(params)
            _fix_args(args, adapt)
            body = xmlrpc.client.dumps(tuple(args), method)
    return client.post(req["path"], content=body.encode(), headers=req["headers"])


def assert_same_shape(expected: Any, actual: Any, where: str = "result") -> None:
    """Same JSON types and keys; False may stand for any empty value, lists compare their first items."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        if expected is False or actual is False:
            return
        assert type(actual) is type(expected), f"{where}: {actual!r} is not shaped like {expected!r}"
        return
    if expected is None:
        assert actual is None, f"{where}: expected null, got {actual!r}"
        return
    assert type(actual) is type(expected), f"{where}: {actual!r} is not shaped like {expected!r}"
    if isinstance(expected, dict):
        assert list(actual) == list(expected), f"{where}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert_same_shape(expected[key], actual[key], f"{where}.{key}")
    elif isinstance(expected, list) and expected and actual:
        if len(expected) == 2 and isinstance(expected[0], int) and isinstance(expected[1], str):
            assert len(actual) == 2, f"{where}: many2one pair expected, got {actual!r}"
        for i, item in enumerate(actual):
            assert_same_shape(expected[min(i, len(expected) - 1)], item, f"{where}[{i}]")


def check(cap: dict[str, Any], resp: httpx.Response, exact: bool = False) -> Any:
    """Compare the sandbox's reply with the capture; returns the decoded result (or None).

    Errors and faults must be byte-identical to the capture; results must have the
    capture's shape, or be equal to it when ``exact``.
    """
    exp = cap["response"]
    assert resp.status_code == exp["status"], resp.text
    assert resp.headers["content-type"] == exp["content_type"]
    if exp["status"] != 200:
        assert resp.text == exp["body"]
        return None
    if cap["protocol"] == "jsonrpc":
        expected, actual = json.loads(exp["body"]), resp.json()
        assert list(actual) == list(expected), f"envelope keys {list(actual)} != {list(expected)}: {actual}"
        if "error" in expected:
            assert resp.text == exp["body"]
            return None
        if "result" not in expected:
            return None
        if exact:
            assert actual["result"] == expected["result"]
        else:
            assert_same_shape(expected["result"], actual["result"])
        return actual["result"]
    if "<fault>" in exp["body"]:
        assert resp.text == exp["body"]
        return None
    assert "<fault>" not in resp.text, resp.text
    (expected,), _ = xmlrpc.client.loads(exp["body"])
    (actual,), _ = xmlrpc.client.loads(resp.text)
    if exact:
        assert actual == expected
    else:
        assert_same_shape(expected, actual)
    return actual


def replay(client: httpx.Client, name: str, adapt: Callable[[list[Any]], None] | None = None,
           exact: bool = False) -> Any:
    cap = capture(name)
    return check(cap, send(client, cap, adapt), exact)


def set_ids(position: int, ids: list[int]) -> Callable[[list[Any]], None]:
    """An adapter replacing the ids list at args[5][position]."""
    def adapt(args: list[Any]) -> None:
        args[5][position] = ids
    return adapt


def set_values(**values: Any) -> Callable[[list[Any]], None]:
    """An adapter overriding keys of the values dict (create: args[5][0], write: args[5][1])."""
    def adapt(args: list[Any]) -> None:
        target = args[5][0] if args[4] == "create" else args[5][1]
        for item in (target if isinstance(target, list) else [target]):
            item.update(values)
    return adapt


# Captures replayed as they are (only the database renamed): the reply must match exactly,
# byte for byte for errors and faults.
STATELESS = [
    "01-version-jsonrpc", "01-version-xmlrpc",
    "02-authenticate-ok-jsonrpc", "02-authenticate-ok-xmlrpc",
    "03-authenticate-wrong-password-jsonrpc", "03-authenticate-wrong-password-xmlrpc",
    "03-execute-kw-uid-false-jsonrpc", "03-execute-kw-wrong-password-jsonrpc", "03-execute-kw-wrong-password-xmlrpc",
    "05-unknown-model-jsonrpc", "05-unknown-model-xmlrpc",
    "06-unknown-field-in-create-jsonrpc", "06-unknown-field-in-create-xmlrpc",
    "06-unknown-field-in-domain-jsonrpc", "06-unknown-field-in-domain-xmlrpc",
    "07-read-missing-id-jsonrpc", "07-read-missing-id-xmlrpc",
    "07-write-missing-id-jsonrpc", "07-write-missing-id-xmlrpc",
    "09-private-method-jsonrpc", "09-private-method-xmlrpc",
    "09-unknown-method-jsonrpc", "09-unknown-method-xmlrpc",
    "11-create-missing-required-jsonrpc", "11-create-missing-required-xmlrpc",
    "12-wrong-selection-value-jsonrpc", "12-wrong-selection-value-xmlrpc",
    "16-resolve-unknown-external-id-jsonrpc",
    "19-authenticate-bad-db-jsonrpc", "19-authenticate-bad-db-xmlrpc",
    "19-execute-kw-bad-db-jsonrpc", "19-execute-kw-bad-db-xmlrpc",
    "20-invalid-json-jsonrpc", "20-json-array-body-jsonrpc", "20-malformed-xml-xmlrpc",
    "20-minimal-envelope-jsonrpc", "20-missing-params-jsonrpc", "20-params-array-jsonrpc",
    "20-wrong-content-type-jsonrpc",
    "27-authenticate-after-failures-jsonrpc",
    "28-legacy-endpoint-fault-xmlrpc",
]


@pytest.mark.parametrize("name", STATELESS)
def test_capture_replays_identically(client: httpx.Client, name: str) -> None:
    replay(client, name, exact=True)


def test_workcenter_search_read_has_the_captured_shape(client: httpx.Client) -> None:
    for name in ("04-search-read-workcenters-jsonrpc", "04-search-read-workcenters-xmlrpc"):
        rows = replay(client, name)
        assert rows == [{"id": 1, "name": "CNC-01 Machining", "code": "CNC-01", "working_state": "normal"}]


def test_read_drops_missing_ids_silently(client: httpx.Client) -> None:
    rows = replay(client, "07-read-partial-jsonrpc")
    assert rows == [{"id": 1, "name": "WH/MO/00001", "state": "progress"}]


def test_user_without_manufacturing_rights_gets_the_access_error(client: httpx.Client) -> None:
    uid = replay(client, "08-create-employee-user-jsonrpc")
    for name in ("08-access-error-jsonrpc", "08-access-error-xmlrpc"):
        def adapt(args: list[Any]) -> None:
            args[1] = uid
        replay(client, name, adapt)


def test_maintenance_request_create_returns_an_id(client: httpx.Client) -> None:
    first = replay(client, "10-maintenance-request-create-jsonrpc")
    second = replay(client, "10-maintenance-request-create-xmlrpc")
    assert isinstance(first, int) and second == first + 1


def test_downtime_scenario_over_jsonrpc(client: httpx.Client) -> None:
    first = replay(client, "13-1-open-downtime-jsonrpc")
    second = replay(client, "13-2-second-open-downtime-jsonrpc")
    rows = replay(client, "13-3-workcenter-blocked-jsonrpc")
    assert rows[0]["working_state"] == "blocked"
    replay(client, "13-4-unblock-jsonrpc", exact=True)
    logs = replay(client, "13-5-read-closed-downtimes-jsonrpc", set_ids(0, [first, second]))
    assert [log["id"] for log in logs] == [first, second]
    assert all(log["date_end"] for log in logs)
    assert [log["loss_id"][1] for log in logs] == ["Equipment Failure", "Material Availability"]
    replay(client, "13-6-unblock-again-jsonrpc")


def test_downtime_scenario_over_xmlrpc(client: httpx.Client) -> None:
    replay(client, "13-1-open-downtime-xmlrpc")
    replay(client, "13-2-second-open-downtime-xmlrpc")
    replay(client, "13-4-unblock-xmlrpc", exact=True)
    replay(client, "13-6-unblock-again-xmlrpc")


def _mo_with_components(client: httpx.Client, qty: float, producing: float) -> tuple[int, list[int]]:
    mo = rpc(client, "mrp.production", "create", [{"product_id": 1, "product_qty": qty, "state": "progress",
                                                  "qty_producing": producing}])
    moves = [rpc(client, "stock.move", "create", [{
        "name": "component", "product_id": 1, "product_uom_qty": demand, "quantity": demand,
        "state": "assigned", "location_id": 6, "location_dest_id": 4, "raw_material_production_id": mo}])
        for demand in (qty, 2 * qty)]
    return mo, moves


def test_method_returning_none_commits_and_replies_without_result(client: httpx.Client) -> None:
    mo, moves = _mo_with_components(client, 2, 1)
    before = replay(client, "14-1-read-before-xmlrpc", set_ids(0, moves))
    assert [m["picked"] for m in before] == [False, False]
    replay(client, "14-2-method-returns-none-jsonrpc", set_ids(0, [mo]))
    after = replay(client, "14-3-read-after-none-fault-xmlrpc", set_ids(0, moves))
    assert [(m["quantity"], m["picked"]) for m in after] == [(1.0, True), (2.0, True)]


def test_xmlrpc_none_fault_comes_after_the_commit(client: httpx.Client) -> None:
    mo, moves = _mo_with_components(client, 2, 1)
    replay(client, "14-2-method-returns-none-xmlrpc", set_ids(0, [mo]))
    after = replay(client, "14-3-read-after-none-fault-xmlrpc", set_ids(0, moves))
    assert [m["picked"] for m in after] == [True, True]


def test_load_is_an_upsert_and_reports_bad_rows(client: httpx.Client) -> None:
    first = replay(client, "15-1-load-create-jsonrpc")
    assert replay(client, "15-2-load-again-jsonrpc") == first
    xml_first = replay(client, "15-1-load-create-xmlrpc")
    assert replay(client, "15-2-load-again-xmlrpc") == xml_first
    replay(client, "15-3-load-missing-required-jsonrpc", exact=True)
    replay(client, "15-3-load-missing-required-xmlrpc", exact=True)
    replay(client, "15-4-load-batch-one-bad-row-jsonrpc", exact=True)
    assert rpc(client, "ir.model.data", "search_count", [[["name", "in", ["evt_test_3", "evt_test_4"]]]]) == 0
    for name in ("16-resolve-external-id-jsonrpc", "16-resolve-external-id-xmlrpc"):
        (row,) = replay(client, name)
        assert (row["module"], row["name"], row["model"], row["res_id"]) == \
            ("linebridge", "evt_test_1", "maintenance.request", first["ids"][0])


def test_scrap_validates_or_asks_for_confirmation_when_stock_is_short(client: httpx.Client) -> None:
    scrap_values = set_values(product_id=1, production_id=1, location_id=6)
    for protocol in ("jsonrpc", "xmlrpc"):
        ok = replay(client, f"17-1-scrap-create-{protocol}", scrap_values)
        assert replay(client, f"17-2-scrap-validate-ok-{protocol}", set_ids(0, [ok]), exact=True) is True
        short = replay(client, f"17-3-scrap-create-short-{protocol}", scrap_values)
        wizard = replay(client, f"17-4-scrap-validate-short-{protocol}", set_ids(0, [short]))
        assert wizard["res_model"] == "stock.warn.insufficient.qty.scrap"
        assert wizard["context"]["default_scrap_id"] == short
    (done,) = replay(client, "17-5-scrap-read-jsonrpc", set_ids(0, [ok]))
    assert done["state"] == "done" and done["scrap_location_id"][1] == "Virtual Locations/Scrap"
    assert rpc(client, "stock.scrap", "read", [[short]], {"fields": ["state"]})[0]["state"] == "draft"


def _mo_producing(client: httpx.Client, qty: float, producing: float) -> int:
    return rpc(client, "mrp.production", "create", [{"product_id": 1, "product_qty": qty, "state": "progress",
                                                    "qty_producing": producing}])


def test_mark_done_asks_for_a_backorder_then_creates_it(client: httpx.Client) -> None:
    mo = _mo_producing(client, 3, 1)
    replay(client, "18-1-mark-done-backorder-wizard-jsonrpc", set_ids(0, [mo]))
    def with_context(args: list[Any]) -> None:
        args[5][0] = [mo]
        args[6]["context"]["mo_ids_to_backorder"] = [mo]
    action = replay(client, "18-2-mark-done-skip-backorder-jsonrpc", with_context)
    name = rpc(client, "mrp.production", "read", [[mo]], {"fields": ["name"]})[0]["name"]
    base = name.rsplit("-", 1)[0]
    def by_name(args: list[Any]) -> None:
        args[5][0] = [["name", "=like", base + "-%"]]
    rows = replay(client, "18-3-read-after-mark-done-fault-xmlrpc", by_name)
    assert [(r["name"], r["state"], r["product_qty"], r["qty_produced"]) for r in rows] == [
        (base + "-001", "done", 1.0, 1.0), (base + "-002", "confirmed", 2.0, 0.0)]
    assert action["res_id"] == rows[1]["id"]


def test_mark_done_over_xmlrpc_faults_after_commit_unless_skip_redirection(client: httpx.Client) -> None:
    mo = _mo_producing(client, 3, 1)
    replay(client, "18-1-mark-done-backorder-wizard-xmlrpc", set_ids(0, [mo]))
    def with_context(target: int) -> Callable[[list[Any]], None]:
        def adapt(args: list[Any]) -> None:
            args[5][0] = [target]
            if "mo_ids_to_backorder" in args[6]["context"]:
                args[6]["context"]["mo_ids_to_backorder"] = [target]
        return adapt
    replay(client, "18-2-mark-done-skip-backorder-xmlrpc", with_context(mo))
    assert rpc(client, "mrp.production", "read", [[mo]], {"fields": ["state"]})[0]["state"] == "done"
    other = _mo_producing(client, 3, 1)
    replay(client, "18-4-mark-done-skip-redirection-xmlrpc", with_context(other), exact=True)
    last = _mo_producing(client, 3, 1)
    replay(client, "18-5-mark-done-no-backorder-xmlrpc", with_context(last), exact=True)
    (row,) = replay(client, "18-6-read-no-backorder-xmlrpc", set_ids(0, [last]))
    assert (row["state"], row["product_qty"], row["qty_produced"]) == ("done", 3.0, 1.0)


def test_batch_create_returns_ids_in_order(client: httpx.Client) -> None:
    def one_equipment(args: list[Any]) -> None:
        for vals in args[5][0]:
            if "equipment_id" in vals:
                vals["equipment_id"] = 1
    ids = replay(client, "21-batch-create-jsonrpc", one_equipment)
    assert ids == sorted(ids) and len(ids) == 3
    assert replay(client, "21-batch-create-xmlrpc", one_equipment) == [i + 3 for i in ids]


def test_search_read_paging(client: httpx.Client) -> None:
    for qty in (1, 2, 3, 4, 5):
        _mo_producing(client, qty, 0)
    rows = replay(client, "22-search-read-paging-jsonrpc")
    assert [r["id"] for r in rows] == [4, 3, 2]
    assert [r["id"] for r in replay(client, "22-search-read-paging-xmlrpc")] == [4, 3, 2]


def test_value_shapes_on_read(client: httpx.Client) -> None:
    request = replay(client, "10-maintenance-request-create-jsonrpc")
    for name in ("23-value-shapes-jsonrpc", "23-value-shapes-xmlrpc"):
        cap = capture(name)
        def adapt(args: list[Any]) -> None:
            args[5][0] = [request]
            # the sandbox has no equipment categories and no mail followers
            args[6]["fields"] = [f for f in args[6]["fields"] if f not in ("category_id", "message_follower_ids")]
        for key in ("category_id", "message_follower_ids"):
            body = json.loads(cap["response"]["body"]) if name.endswith("jsonrpc") else None
            if body:
                del body["result"][0][key]
                cap["response"]["body"] = json.dumps(body)
        if name.endswith("xmlrpc"):
            (rows,), _ = xmlrpc.client.loads(cap["response"]["body"])
            for key in ("category_id", "message_follower_ids"):
                del rows[0][key]
            cap["response"]["body"] = xmlrpc.client.dumps((rows,), methodresponse=True)
        (row,) = check(cap, send(client, cap, adapt))
        assert row["equipment_id"] == [1, "CNC-01/CNC-01"]
        assert row["schedule_date"] is False and row["close_date"] is False


def test_datetimes_only_in_odoo_format(client: httpx.Client) -> None:
    request = replay(client, "10-maintenance-request-create-jsonrpc")
    for name in ("24-datetime-iso-t-rejected-jsonrpc", "24-datetime-odoo-format-ok-jsonrpc",
                 "24-datetime-odoo-format-ok-xmlrpc", "24-datetime-xmlrpc-type-rejected-xmlrpc"):
        replay(client, name, set_ids(0, [request]), exact=True)
    assert rpc(client, "maintenance.request", "read", [[request]], {"fields": ["schedule_date"]})[0][
        "schedule_date"] == "2026-11-23 09:00:00"


def test_downtime_duration_counts_working_calendar_time(client: httpx.Client) -> None:
    def on_cnc(args: list[Any]) -> None:
        args[5][0]["workcenter_id"] = 1
    ids = [replay(client, f"26-{name}-jsonrpc", on_cnc) for name in (
        "create-downtime-weekend", "create-downtime-weekday", "create-downtime-lunch", "create-productive-weekend")]
    for name in ("26-read-durations-jsonrpc", "26-read-durations-xmlrpc"):
        rows = replay(client, name, set_ids(0, ids))
        assert [r["duration"] for r in rows] == [0.0, 120.0, 60.0, 120.0]


def test_no_cooldown_after_failed_rpc_logins(client: httpx.Client) -> None:
    wrong = capture("03-execute-kw-wrong-password-jsonrpc")
    for _ in range(12):
        send(client, wrong)
    assert replay(client, "27-correct-password-after-failures-jsonrpc") == 1
    assert replay(client, "27-correct-password-after-failures-xmlrpc") == 1
