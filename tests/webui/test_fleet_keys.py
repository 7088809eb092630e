"""The console's "Fleet & keys" page against a running gateway, the Odoo sandbox and a real mosquitto:
an admin rotates the Odoo API key while parts flow (checked first, stored atomically, used without a
restart, the old key named by fingerprint); a wrong key changes nothing; technicians, viewers and
requests without a CSRF token are refused; the fleet lists this gateway (verified) and the others on the
broker; no key ever appears in an answer, a page or the log."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import pytest

from gateway.credentials import fingerprint, use_fingerprint_key
from gateway.signing import DeviceKey
from gateway.events import iso_utc
from tests.drivers.mqtt.broker import MosquittoBroker, Publisher
from tests.helpers import wait_for
from tests.webui.conftest import (Console, Gateway, admin_console, admin_page, demo_config,
                                  start_gateway)

NEW = "rotated-7c1e9d2b4a6f8e0c3b5d7a9f1e2c4b6d8a0f"
WRONG = "wrong-key-nobody-made-in-odoo-0123456789"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    b = MosquittoBroker(tmp_path_factory.mktemp("fleet-broker"))
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, broker: MosquittoBroker) -> Iterator[Gateway]:
    def config(plant: int, odoo_url: str, ui: int) -> str:
        return demo_config(plant, odoo_url, ui) + (f'\n[sinks.up]\ntype = "mqtt"\nurl = "mqtt://127.0.0.1:{broker.port}"\n'
                                                   '\n[heartbeat]\nsink = "up"\ninterval = 0.5\n')
    yield from start_gateway(Path(tmp_path_factory.mktemp("fleet-gw")), config)


def _qty(gw: Gateway, key: str) -> float:
    import httpx
    body = {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
        "service": "object", "method": "execute_kw",
        "args": ["sandbox", 2, key, "mrp.workorder", "search_read", [[]], {"fields": ["qty_producing"]}]}}
    return sum(r["qty_producing"] for r in httpx.post(f"{gw.odoo.url}/jsonrpc", json=body, timeout=10).json()["result"])


def _user(gw: Gateway, admin: Console, name: str, role: str) -> Console:
    assert admin.api("POST", "/users", {"name": name, "role": role, "password": f"{name} has a password"}
                     ).status_code == 200
    c = Console(gw)
    assert c.login(name, f"{name} has a password").status_code == 302
    return c


def test_only_an_admin_sees_the_page_and_rotates_and_without_csrf_nobody_does(gw: Gateway) -> None:
    admin = admin_console(gw)
    tech, viewer = _user(gw, admin, "tina", "technician"), _user(gw, admin, "vic", "viewer")
    before = gw.config_path.read_bytes()
    for who in (tech, viewer):
        assert who.http.get("/fleet").status_code == 403
        assert who.api("GET", "/fleet").status_code == 403
        assert who.api("GET", "/credentials").status_code == 403
        refused = who.api("POST", "/connections/odoo/rotate-key", {"api_key": NEW})
        assert refused.status_code == 403 and NEW not in refused.text
        assert "Fleet &amp; keys" not in who.http.get("/overview").text
    assert admin.http.post("/api/v1/connections/odoo/rotate-key", json={"api_key": NEW}).status_code == 403
    assert gw.config_path.read_bytes() == before
    assert "Fleet &amp; keys" in admin.http.get("/overview").text


def test_a_wrong_key_is_refused_and_nothing_is_stored(gw: Gateway) -> None:
    admin = admin_console(gw)
    before = gw.config_path.read_bytes()
    resp = admin.api("POST", "/connections/odoo/rotate-key", {"api_key": WRONG})
    assert resp.status_code == 422, resp.text
    assert "was not stored" in resp.json()["error"] and any("login" in p for p in resp.json()["problems"])
    assert WRONG not in resp.text and gw.config_path.read_bytes() == before
    assert admin.api("POST", "/connections/odoo/rotate-key", {}).status_code == 422
    assert admin.api("POST", "/connections/nope/rotate-key", {"api_key": NEW}).status_code == 404


def test_an_admin_rotates_the_key_under_load_and_the_gateway_goes_on_with_the_new_one(gw: Gateway) -> None:
    admin = admin_console(gw)
    wait_for(lambda: _qty(gw, "admin") > 0, 30, "parts delivered with the first key")
    creds = admin.api("GET", "/credentials").json()
    (odoo,) = creds["odoo"]
    use_fingerprint_key(DeviceKey.load(gw.state_dir).fingerprint_key())   # as the gateway fingerprints
    assert odoo["fingerprint"] == fingerprint("admin") and odoo["kept"] == "inline" and odoo["rotatable"]
    gw.odoo.add_api_key(NEW)
    resp = admin.api("POST", "/connections/odoo/rotate-key", {"api_key": NEW})
    assert resp.status_code == 200, resp.text
    r = resp.json()
    assert (r["old"], r["new"], r["in_use"]) == (fingerprint("admin"), fingerprint(NEW), True)
    assert f"revoke the old API key {fingerprint('admin')}" in r["revoke"]
    assert NEW not in resp.text and f'"{NEW}"' in gw.config_path.read_text()
    gw.odoo.revoke_api_key("admin")
    mid = _qty(gw, NEW)
    wait_for(lambda: _qty(gw, NEW) > mid, 30, "parts delivered with the new key alone")
    status = admin.api("GET", "/status").json()["sinks"]["odoo"]
    assert status["state"] != "paused" and status.get("key_fingerprint") == fingerprint(NEW)
    assert admin.api("GET", "/credentials").json()["odoo"][0]["fingerprint"] == fingerprint(NEW)
    history = admin.api("GET", "/config/history").json()
    entry = history["history"][0]
    assert entry["who"] == "admin" and "secret changed: sinks.odoo.api_key" in entry["what"]
    diff = admin.api("GET", f"/config/history/{entry['id']}").text
    assert "secret changed" in diff and NEW not in diff
    log = gw.log()
    assert "event=webui_key_rotated sink=odoo user=admin" in log and "event=started" in log
    assert log.count("event=started") == 1
    for text in (log, json.dumps(history), admin.api("GET", "/config").text, admin.http.get("/fleet").text):
        assert NEW not in text
    gw.odoo.add_api_key("admin")   # the module's other tests and the fixture's checks use the first key


def test_the_fleet_lists_this_gateway_verified_and_the_others_on_the_broker(gw: Gateway, broker) -> None:
    admin = admin_console(gw)
    now = time.time()
    with Publisher(broker.port) as pub:
        pub.publish("linebridge/far/gw-far/status", json.dumps({
            "state": "online", "gateway": "gw-far", "site": "far", "interval_s": 10, "ts": iso_utc(now - 600),
            "backlog": {"odoo": 7}}), retain=True)
        pub.publish("linebridge/far/gw-dead/status", json.dumps({
            "state": "offline", "reason": "connection lost", "gateway": "gw-dead", "site": "far",
            "ts": iso_utc(now)}), retain=True)

    def rows() -> dict:
        return {r["gateway"]: r for r in admin.api("GET", "/fleet").json()["gateways"]}
    got = wait_for(lambda: (r := rows()) and {"gw-far", "gw-dead", "demo-gw"} <= set(r) and r, 20,
                   "the fleet on the broker")
    me = next(r for g, r in got.items() if g not in ("gw-far", "gw-dead"))
    assert me["state"] == "online" and me["signature"] == "verified"
    assert got["gw-far"]["state"] == "stale" and got["gw-far"]["backlog"] == 7
    assert got["gw-far"]["signature"] == "unsigned"
    assert got["gw-dead"]["state"] == "offline"


def test_the_page_shows_keys_certificates_and_the_fleet_without_script_errors(gw: Gateway, browser) -> None:
    with admin_page(browser, gw) as page:
        page.goto("/fleet")
        page.get_by_role("heading", name="Odoo API keys").wait_for()
        page.locator("#fleet-table tbody tr").first.wait_for()
        assert "gateway(s)" in page.locator("#fleet-counts").inner_text()
        assert "In use: hmac:" in page.locator("#key-list").inner_text()   # a fingerprint, never the key
        page.locator("#newkey-odoo").fill(WRONG)
        page.locator("#rotate-btn-odoo").click()
        page.locator("#rotate-odoo p.error").wait_for()
        assert "was not stored" in page.locator("#rotate-odoo p.error").inner_text()
        assert page.locator("#newkey-odoo").input_value() == ""
        assert WRONG not in page.content()
