"""The status light in every page's header (webui.light): the worst state, its reason and since when.

First over status snapshots the way the API serves them, then on a running gateway whose Odoo sandbox
starts answering 503: the light in a page's header turns red naming the Odoo connection, with its time,
and green again once Odoo answers.
"""
from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.helpers import wait_for
from tests.webui.conftest import Gateway, admin_console, admin_page, start_gateway
from tests.webui.test_browser import LAPTOP, SLOW, go
from webui.light import light


def _status(**over: Any) -> dict[str, Any]:
    st: dict[str, Any] = {"healthy": True, "tasks": {"sink:odoo": {"state": "running", "restarts": 0}},
                          "sinks": {"odoo": {"type": "odoo", "state": "idle", "dead_letters": 0}},
                          "devices": {"cnc": {"connected": True, "last_error": None}}}
    for key, value in over.items():
        st[key] = value
    return st


def test_all_working_is_green() -> None:
    assert light(_status()) == {"level": "ok", "reason": "every connection and device works", "since": None,
                                "problems": []}


def test_a_retrying_connection_is_red_with_its_error_and_time() -> None:
    t = time.time() - 60
    out = light(_status(sinks={"odoo": {"type": "odoo", "state": "retrying", "last_error": "HTTP 503",
                                        "last_error_at": t, "dead_letters": 0}}))
    assert out["level"] == "bad" and out["since"] == t and out["page"] == "connections"
    assert out["reason"] == "Odoo connection odoo: retrying: HTTP 503"


def test_the_worst_wins_and_the_rest_is_listed() -> None:
    out = light(_status(sinks={"odoo": {"type": "odoo", "state": "idle", "dead_letters": 3},
                               "up": {"type": "mqtt", "state": "idle", "held_for_person": 2}},
                        devices={"cnc": {"connected": False, "last_error": "timed out", "last_error_at": 5.0},
                                 "press": {"connected": True, "last_error": "CRC error", "last_error_at": 9.0}}))
    assert out["level"] == "bad" and out["reason"] == "device cnc: not connected: timed out" and out["since"] == 5.0
    assert [p["level"] for p in out["problems"]] == ["bad", "warn", "warn", "warn"]
    assert {p["reason"] for p in out["problems"][1:]} == {"3 dead letter(s) wait for a person",
                                                          "2 event(s) held for a person", "CRC error"}


def test_dead_letters_alone_are_yellow_and_lead_to_the_queue() -> None:
    out = light(_status(sinks={"odoo": {"type": "odoo", "state": "idle", "dead_letters": 1}}))
    assert out["level"] == "warn" and out["page"] == "queue"


def test_a_task_past_its_window_is_red() -> None:
    out = light(_status(healthy=False, tasks={"device:cnc": {"state": "restarting", "last_error": "boom",
                                                             "last_death": 3.0}}))
    assert out["level"] == "bad" and "watchdog" in out["reason"]
    assert light(_status(tasks={"x": {"state": "dead", "last_error": "bug", "last_death": 1.0}}))["level"] == "bad"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from start_gateway(tmp_path_factory.mktemp("light"))


def test_the_header_light_follows_odoo_down_and_up(gw: Gateway, browser: Browser) -> None:
    c = admin_console(gw)
    wait_for(lambda: c.api("GET", "/status").json()["light"]["level"] == "ok", 60, "a green light")
    try:
        with admin_page(browser, gw, LAPTOP, SLOW) as page:
            go(page, "System")
            light_el = page.locator("#status-light")
            expect(light_el).to_have_text("All working")
            expect(light_el).to_have_class("light light-ok")
            gw.odoo.set_faults(http_status=503)
            expect(light_el).to_have_class("light light-bad", timeout=60_000)
            expect(light_el).to_contain_text("Not working: Odoo connection odoo:")
            assert " since " in (light_el.get_attribute("title") or "")
            assert light_el.get_attribute("href") == "/connections"
            gw.odoo.set_faults()
            expect(light_el).to_have_class("light light-ok", timeout=90_000)
    finally:
        gw.odoo.set_faults()
        c.close()
