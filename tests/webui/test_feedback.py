"""What a save on Rules & mappings answers appears beside the control used, in view, in Chromium.

At the 10-inch panel's 1024x600 the rule and shift forms are below the fold: a
result at the top of the page is out of view and a failed save looks like
nothing happened. These tests save through the forms of a real gateway's
console and check the answer is next to the form and inside the viewport.
"""
from __future__ import annotations

import re
from typing import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.webui.conftest import ADMIN_PASSWORD, Gateway, admin_console

PANEL = {"width": 1024, "height": 600}
expect.set_options(timeout=20_000)


@pytest.fixture
def page(browser: Browser, gateway: Gateway) -> Iterator[Page]:
    admin_console(gateway).close()           # the first setup, if not done yet
    context = browser.new_context(ignore_https_errors=True, viewport=PANEL, base_url=gateway.base_url)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto("/login")
    pg.get_by_label("User name").fill("admin")
    pg.get_by_label("Password").fill(ADMIN_PASSWORD)
    pg.get_by_role("button", name="Log in").click()
    expect(pg).to_have_url(re.compile(r"/overview$"))
    yield pg
    context.close()
    assert not errors, errors


def open_rules(page: Page) -> None:
    page.goto("/mappings")
    expect(page.locator("#machines-table tbody tr").first).to_contain_text("CNC-01")
    page.get_by_text("Add or replace a rule (JSON)").click()


def test_a_json_syntax_error_is_shown_beside_the_rule_form_in_view(page: Page) -> None:
    open_rules(page)
    form = page.locator("#rule-form")
    form.get_by_label("Name").fill("broken")
    form.get_by_label("Settings (JSON)").fill('{"type": "counter", "device": "cnc01",')
    form.get_by_role("button", name="Save rule").click()
    notice = page.locator("#rule-form + .notice .error")
    expect(notice).to_contain_text("the rule's settings is not valid JSON")
    expect(notice).to_be_in_viewport()
    expect(page.locator("#flash")).to_be_empty()


def test_a_refused_rule_lists_its_problems_beside_the_form(page: Page) -> None:
    open_rules(page)
    form = page.locator("#rule-form")
    form.get_by_label("Name").fill("ghost")
    form.get_by_label("Settings (JSON)").fill('{"type": "counter", "device": "no_such_device", "tag": "parts", "kind": "production"}')
    form.get_by_role("button", name="Save rule").click()
    notice = page.locator("#rule-form + .notice .error")
    expect(notice).to_contain_text("no_such_device")
    expect(notice).to_be_in_viewport()


def test_a_saved_calendar_says_so_beside_its_form(page: Page) -> None:
    page.goto("/mappings")
    page.get_by_text("Edit (JSON)").click()
    form = page.locator("#shifts-form")
    form.get_by_label("Calendar (JSON)").fill('{"timezone": "UTC", "shifts": [{"name": "day", "start": "06:00", "end": "18:00"}]}')
    form.get_by_role("button", name="Save shifts").click()
    notice = page.locator("#shifts-form + .notice")
    expect(notice).to_contain_text(re.compile(r"Saved as change #\d+|shift"))
    expect(notice).to_be_in_viewport()
