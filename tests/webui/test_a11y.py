"""Every console page at a phone's, a 10-inch panel's and a desktop's size: axe-core and the layout checks.

Against a real gateway (the demo configuration: a Modbus machine on the sandbox
plant delivering to the Odoo sandbox), each page of `tests/webui/pages.py` is
opened in Chromium, waited for until its data is shown, and must have no
axe-core violation at all (every rule, every impact) and none of the layout
problems `tests/webui/a11y.py` measures: no sideways scrolling, no content
spilling out of its box, the heading in the first screen, controls big enough
to tap on the phone.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.webui.a11y import axe_violations, inject_axe, layout_problems
from tests.webui.conftest import Gateway, admin_console, admin_page
from tests.webui.pages import PAGES, PUBLIC, VIEWPORTS, ConsolePage
from webui.pages import NAV

ROLE_PASSWORD = "a long enough password"


def check(page: Page, p: ConsolePage, size: str) -> list[str]:
    """The problems of page `p` at `size`, each prefixed with where it was seen."""
    page.goto(p.path)
    page.wait_for_selector(p.ready)
    found = [f"{p.path} at {size}: {f}" for f in axe_violations(page) + layout_problems(page, phone=size == "phone")]
    # what folds away (a rule's JSON, the shift calendar's editor) is checked unfolded too
    if page.evaluate("() => { const d = [...document.querySelectorAll('main details:not([open])')]; d.forEach(x => x.open = true); return d.length; }"):
        found += [f"{p.path} at {size}, unfolded: {f}"
                  for f in axe_violations(page) + layout_problems(page, phone=size == "phone")]
    for opener in p.opens:
        if not page.locator(opener).is_visible():  # a viewer has no Edit button
            continue
        page.locator(opener).click()
        dialog = page.locator("dialog[open]")
        dialog.wait_for()
        page.wait_for_timeout(300)  # what the dialog loads on opening (a test read, a trend) is shown
        name = dialog.get_attribute("id")
        found += [f"{p.path} at {size}, dialog {name}: {f}"
                  for f in axe_violations(page) + layout_problems(page, phone=size == "phone")]
        page.keyboard.press("Escape")
        expect(page.locator("dialog[open]")).to_have_count(0)
    return found


def test_every_console_page_is_checked() -> None:
    missing = {f"/{endpoint}" for endpoint, _ in NAV} - {p.path for p in PAGES}
    assert not missing, f"pages of the console's navigation missing from tests/webui/pages.py: {missing}"


def test_the_pages_before_login_pass_axe_and_fit(browser: Browser, gateway: Gateway) -> None:
    problems: list[str] = []
    setup, login, missing = PUBLIC
    for first in (True, False):
        if not first:
            admin_console(gateway).close()  # the administrator exists: the setup page is gone
        for size, viewport in VIEWPORTS.items():
            context = browser.new_context(ignore_https_errors=True, viewport=viewport, base_url=gateway.base_url)
            inject_axe(context)
            page = context.new_page()
            try:
                for p in ([setup] if first else [login, missing]):
                    problems += check(page, p, size)
            finally:
                context.close()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_every_page_passes_axe_and_fits(browser: Browser, gateway: Gateway, size: str) -> None:
    problems: list[str] = []
    with admin_page(browser, gateway, VIEWPORTS[size]) as page:
        inject_axe(page.context)
        for p in PAGES:
            problems += check(page, p, size)
    assert not problems, "\n".join(problems)


def test_the_navigation_folds_behind_menu_on_a_phone_only(browser: Browser, gateway: Gateway) -> None:
    with admin_page(browser, gateway, VIEWPORTS["phone"]) as page:
        nav = page.get_by_role("navigation", name="Pages")
        menu = page.get_by_role("button", name="Menu")
        expect(nav).to_be_hidden()
        expect(menu).to_have_attribute("aria-expanded", "false")
        menu.click()
        expect(menu).to_have_attribute("aria-expanded", "true")
        nav.get_by_role("link", name="Queue", exact=True).click()
        expect(page.locator("main h1")).to_have_text("Queue")
        expect(nav).to_be_hidden()  # a new page starts folded: its heading is in the first screen
        # the keyboard's way past the header
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to the page")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"/queue#main$"))
        page.set_viewport_size(VIEWPORTS["panel"])
        expect(nav).to_be_visible()
        expect(menu).to_be_hidden()


@pytest.mark.parametrize("role", ["technician", "viewer"])
def test_every_page_passes_axe_and_fits_as_each_role_on_a_phone(browser: Browser, gateway: Gateway, role: str) -> None:
    """What a technician or a viewer sees (fewer controls, text where an admin has a field) passes too."""
    c = admin_console(gateway)
    resp = c.api("POST", "/users", {"name": f"{role}-a11y", "role": role, "password": ROLE_PASSWORD})
    assert resp.status_code in (200, 201), resp.text
    c.close()
    context = browser.new_context(ignore_https_errors=True, viewport=VIEWPORTS["phone"], base_url=gateway.base_url)
    inject_axe(context)
    page = context.new_page()
    problems: list[str] = []
    try:
        page.goto("/login")
        page.get_by_label("User name").fill(f"{role}-a11y")
        page.get_by_label("Password").fill(ROLE_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("header .who")).to_have_text(f"{role}-a11y ({role})")
        for p in PAGES:
            if not p.admin_only:
                problems += [f"as {role}: {f}" for f in check(page, p, "phone")]
    finally:
        context.close()
    assert not problems, "\n".join(problems)
