"""Each machine on the overview: its work order, this shift's parts and scrap, its rate and last delivery.

A real gateway (the demo configuration plus a shift calendar that covers the
whole day) reads the sandbox plant and delivers to the Odoo sandbox; what
`GET /api/v1/production` and the overview's machine card say is compared with
Odoo's open work order and with the plant's counters as the gateway read them.
"""
from __future__ import annotations

import re
import time
from typing import Any, Iterator

import pytest
from playwright.sync_api import Browser, expect

from gateway.sinks.odoo.masterdata import OPEN_STATES
from tests.helpers import wait_for
from tests.webui.conftest import Console, Gateway, admin_console, admin_page, demo_config, odoo_call, start_gateway



@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    # the demo's configuration has a shift calendar covering the whole day (early, late, night)
    yield from start_gateway(tmp_path_factory.mktemp("production"), demo_config)


def machine(c: Console, name: str = "CNC-01") -> dict[str, Any]:
    (m,) = [m for m in c.api("GET", "/production").json()["machines"] if m["machine"] == name]
    return m


def read_counters(c: Console) -> dict[str, Any]:
    (dev,) = [d for d in c.api("GET", "/devices").json()["devices"] if d["name"] == "cnc01"]
    return {v["tag"]: v["value"] for v in dev["values"] if v["quality"] == "good"}


def open_order(gw: Gateway) -> dict[str, Any]:
    """The work order of CNC-01 the gateway delivers to, as Odoo has it (in progress first, then oldest)."""
    (wc,) = odoo_call(gw, "mrp.workcenter", "search", [[["code", "=", "CNC-01"]]])
    rows = odoo_call(gw, "mrp.workorder", "search_read", [[["workcenter_id", "=", wc], ["state", "in", OPEN_STATES]]],
                     {"fields": ["name", "state", "production_id"]})
    rows.sort(key=lambda r: (OPEN_STATES.index(r["state"]), r["id"]))
    return rows[0]


def test_each_machine_shows_its_work_order_shift_figures_rate_and_last_delivery(gw: Gateway, browser: Browser) -> None:
    c = admin_console(gw)
    m = wait_for(lambda: (m := machine(c))["work_orders"] and m["deliveries"][0]["at"] and m["since_start"]["good"]
                 and m, 40, "CNC-01's first delivery to Odoo")
    assert m["work_center"] == "CNC-01" and m["devices"] == ["cnc01"] and m["shifts_configured"]
    order = open_order(gw)
    assert [(o["sink"], o["name"], o["production"]) for o in m["work_orders"]] == [
        ("odoo", order["name"], order["production_id"][1])]
    # parts since the start are the plant's counters as the gateway read them (both start at zero), and
    # the running shift's tally counts the same parts, unless a shift began since the gateway started
    seen: list[Any] = []

    def agrees() -> bool:
        before, now, after = read_counters(c), machine(c), read_counters(c)
        seen.append((before, now["since_start"], now["shift"]))
        return before == after and (now["since_start"]["good"], now["since_start"]["scrap"]) == (
            before["parts"], before["scrap"]) and (now["shift"]["start"] > now["started"] or (
                now["shift"]["good"], now["shift"]["scrap"]) == (before["parts"], before["scrap"]))
    try:
        wait_for(agrees, 60, "the machine's figures to equal the plant's counters", interval=0.2)
    except AssertionError:
        raise AssertionError(f"never equal; last looks: {seen[-3:]}") from None
    m = machine(c)
    hour = time.gmtime().tm_hour
    assert m["shift"]["name"] == ("early" if 6 <= hour < 14 else "late" if 14 <= hour < 22 else "night")
    # the sandbox plant makes about 3 parts a second, less its alarms' stops
    assert 0 < m["since_start"]["rate_per_min"] < 400
    ((odoo,),) = [[d for d in m["deliveries"] if d["sink"] == "odoo"]]
    assert odoo["type"] == "odoo" and time.time() - odoo["at"] < 30
    c.close()
    with admin_page(browser, gw, {"width": 390, "height": 844}) as page:
        card = page.locator("#machine-CNC-01")
        expect(card.locator("h3")).to_contain_text("work center CNC-01")
        expect(card.locator(".m-order")).to_have_text(f"{order['name']} ({order['production_id'][1]})")
        expect(card.locator(".m-shift")).to_have_text(re.compile(r"^\d+ good, \d+ scrap$"))
        expect(card.locator("dt", has_text=re.compile(r"^Shift (early|late|night)$"))).to_be_visible()
        expect(card.locator(".m-rate")).to_have_text(re.compile(r"^\d+(\.\d)? parts/min$"))
        expect(card.locator(".m-delivery")).to_have_text(re.compile(r"^odoo: \d+ s ago$"))
