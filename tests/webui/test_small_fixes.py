"""Small things a technician tripped over, each against a real gateway and, where it is the page, Chromium.

The overview's dead-letter figures agree; "undo" on change N makes the file what
it was before N; an unreachable Odoo is said plainly, not as `ConnectError(...)`;
a page that does not exist answers a styled page with a way back.
"""
from __future__ import annotations

import asyncio
import re

import httpx
from playwright.sync_api import Browser, expect

from gateway.errors import TransientDeliveryError
from gateway.sinks.odoo.protocol import new_http, send
from tests.helpers import free_port, wait_for
from tests.webui.conftest import ADMIN_PASSWORD, Gateway, admin_console

expect.set_options(timeout=20_000)


def test_an_unreachable_odoo_is_said_plainly() -> None:
    async def call() -> str:
        async with new_http(5.0) as http:
            try:
                await send(http, "POST", f"http://127.0.0.1:{free_port()}/jsonrpc", "login")
            except TransientDeliveryError as exc:
                return str(exc)
        raise AssertionError("a closed port answered")
    text = asyncio.run(call())
    assert "cannot reach Odoo" in text and not re.search(r"\w+Error\(", text), text
    assert "refused" in text.lower() or "connect" in text.lower(), text


def test_the_overview_dead_letter_figures_agree_and_undo_restores_before_the_change(
        browser: Browser, gateway: Gateway) -> None:
    c = admin_console(gateway)
    machine = c.api("GET", "/machines/CNC-01").json()
    good = machine["section"]
    before_text = gateway.config_path.read_text(encoding="utf-8")
    resp = c.api("PUT", "/machines/CNC-01", {"section": dict(good, work_center="NO-SUCH-WC"),
                                             "version": machine["version"]})
    assert resp.status_code == 200
    broken_change = resp.json()["saved"]["id"]
    wait_for(lambda: c.api("GET", "/status").json()["dead_letters"] >= 3, 60, "dead letters")
    # discarded letters leave the card and the table alike; the count since the start stays in a title
    assert c.api("POST", "/dead-letters/odoo/discard", {}).status_code == 200
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800},
                                  base_url=gateway.base_url)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/overview$"))
    cell = page.locator("#sink-odoo td.dead-now")
    expect(cell).to_have_attribute("title", re.compile(r"^[1-9]\d* dead-lettered since"))
    for _ in range(3):  # while letters keep coming: the card and the table say the same each refresh
        page.wait_for_timeout(2100)
        card, row = page.evaluate("() => [document.querySelector('#card-dead .value').textContent, "
                                  "document.querySelector('#sink-odoo td.dead-now').textContent]")
        assert card == row, (card, row)
    # undo the broken mapping from the history page: the file is what it was before that change
    page.goto("/history")
    row = page.locator(f'#history-table tbody tr[data-entry="{broken_change}"]')
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="undo").click()
    expect(page.locator("#flash .ok")).to_contain_text("Saved as change")
    assert gateway.config_path.read_text(encoding="utf-8") == before_text
    assert c.api("GET", "/machines/CNC-01").json()["section"] == good
    # the first entry (the file as found) has nothing before it to go back to
    first = min(e["id"] for e in c.api("GET", "/config/history").json()["history"])
    expect(page.locator(f'#history-table tbody tr[data-entry="{first}"]').get_by_role("button", name="undo")).to_have_count(0)
    # a page that does not exist: styled, with a way back, and still a 404
    resp = page.goto("/no-such-page")
    assert resp is not None and resp.status == 404
    expect(page.get_by_role("heading", name="No such page")).to_be_visible()
    assert page.evaluate("() => getComputedStyle(document.body).fontFamily") != "\"Times New Roman\""
    page.get_by_role("link", name="Back to the overview").click()
    expect(page).to_have_url(re.compile(r"/overview$"))
    assert httpx.get(gateway.base_url + "/api/v1/nothing-here", verify=False).headers["content-type"].startswith(
        "application/json")
    context.close()
    c.close()
