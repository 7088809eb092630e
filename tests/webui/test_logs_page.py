"""The Logs page in Chromium: newest line first, warnings and errors marked, one clock, a download.

Against a real gateway: a failed login writes a WARNING line; the page must show
it at the top, marked, with the time in the same zone (shown) as the other
pages, and the download must carry every kept line as a file, times in UTC.
"""
from __future__ import annotations

import re

from playwright.sync_api import Browser, expect

from tests.webui.conftest import ADMIN_PASSWORD, Console, Gateway, admin_console

expect.set_options(timeout=20_000)


def test_logs_newest_first_marked_zoned_and_downloadable(browser: Browser, gateway: Gateway) -> None:
    c = admin_console(gateway)
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800},
                                  base_url=gateway.base_url, timezone_id="Europe/Berlin")
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/overview$"))
    page.goto("/logs")
    lines = page.locator("#log-lines .log-line")
    expect(lines.first).to_be_visible()
    # a wrong password now: its warning is the newest line, at the top, marked
    intruder = Console(gateway)
    assert intruder.login("admin", "not the password at all").status_code != 302
    # deliveries log all the time: the warnings only, newest first
    page.get_by_label("Level").select_option("WARNING")
    page.get_by_role("button", name="Filter").click()
    expect(lines.first).to_contain_text("webui_login_failed")
    expect(lines.first).to_have_class(re.compile(r"\blog-warning\b"))
    seqs = [int(s) for s in lines.evaluate_all("ls => ls.map(l => l.dataset.seq)")]
    assert seqs == sorted(seqs, reverse=True)
    assert intruder.login("admin", "another wrong password").status_code != 302
    expect(lines).to_have_count(len(seqs) + 1)
    assert int(lines.first.get_attribute("data-seq")) > seqs[0]
    # one zone everywhere, named: Berlin's in December is CET (UTC+1)
    expect(lines.first.locator(".log-ts")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (CET|GMT\+1)$"))
    expect(page.locator("#log-zone")).to_contain_text("Europe/Berlin")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download").click()
    download = info.value
    assert re.fullmatch(r"linebridge-\d{8}T\d{6}Z\.log", download.suggested_filename)
    text = open(download.path(), encoding="utf-8").read()
    assert "webui_login_failed" in text and re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ WARNING ", text, re.M)
    context.close()
    intruder.close()
    c.close()
