"""Dead letters grouped by reason, with counts, a page at a time, each group replayed or discarded whole.

A real gateway (demo configuration, sandbox plant, Odoo sandbox) maps CNC-01 to
a work center Odoo does not have until dozens of events are dead letters. The
Queue page's refresh then carries the groups and one page of letters, not every
letter; a group's "replay" sends exactly its letters back once the mapping is
right again, and they reach Odoo.
"""
from __future__ import annotations

import re
from typing import Any, Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.helpers import wait_for
from tests.webui.conftest import ADMIN_PASSWORD, Console, Gateway, admin_console

expect.set_options(timeout=20_000)
LETTERS = 60


@pytest.fixture(scope="module")
def piled(gateway: Gateway) -> Iterator[tuple[Console, dict[str, Any]]]:
    c = admin_console(gateway)
    machine = c.api("GET", "/machines/CNC-01").json()
    good = machine["section"]
    assert c.api("PUT", "/machines/CNC-01", {"section": dict(good, work_center="NO-SUCH-WC"),
                                             "version": machine["version"]}).status_code == 200
    wait_for(lambda: c.api("GET", "/dead-letters?limit=1").json()["total"] >= LETTERS, 90, f"{LETTERS} dead letters")
    machine = c.api("GET", "/machines/CNC-01").json()
    assert c.api("PUT", "/machines/CNC-01", {"section": good, "version": machine["version"]}).status_code == 200
    yield c, good
    c.close()


def test_groups_count_by_reason_and_letters_come_a_page_at_a_time(piled: tuple[Console, dict[str, Any]]) -> None:
    c, _ = piled
    groups = c.api("GET", "/dead-letters/groups").json()
    assert groups["total"] >= LETTERS
    wc = [g for g in groups["groups"] if "NO-SUCH-WC" in g["example"]]
    assert len(wc) == 1, groups  # one reason, however many events and machines' numbers differ
    assert wc[0]["sink"] == "odoo" and sum(wc[0]["kinds"].values()) == wc[0]["count"] > LETTERS / 2
    assert sum(g["count"] for g in groups["groups"]) == groups["total"]
    page = c.api("GET", "/dead-letters?offset=10&limit=20").json()
    everything = c.api("GET", "/dead-letters").json()
    assert len(page["dead_letters"]) == 20 and page["total"] == everything["total"] and page["offset"] == 10
    assert [x["seq"] for x in page["dead_letters"]] == [x["seq"] for x in everything["dead_letters"][10:30]]
    of_reason = c.api("GET", "/dead-letters", params={"reason": wc[0]["reason"], "limit": 5}).json()
    assert of_reason["total"] == wc[0]["count"]


def test_the_queue_page_shows_groups_pages_letters_and_replays_a_group(
        browser: Browser, gateway: Gateway, piled: tuple[Console, dict[str, Any]]) -> None:
    c, _ = piled
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800},
                                  base_url=gateway.base_url)
    page = context.new_page()
    sizes: list[int] = []
    page.on("response", lambda r: sizes.append(len(r.body())) if "/api/v1/dead-letters" in r.url else None)
    page.goto("/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/overview$"))
    page.goto("/queue")
    (total,) = [g["count"] for g in c.api("GET", "/dead-letters/groups").json()["groups"] if "NO-SUCH-WC" in g["example"]]
    group = page.locator("#dlq-groups tbody tr.dlq-group", has_text="NO-SUCH-WC")
    expect(group).to_have_count(1)
    expect(page.locator("#dlq-table tbody tr.dead-letter")).to_have_count(50)
    expect(page.locator("#dlq-range")).to_contain_text(re.compile(r"1–50 of \d+"))
    page.get_by_role("button", name="Older page").click()
    expect(page.locator("#dlq-range")).to_contain_text("51–")
    # one refresh carries a page, not every letter
    full = len(c.http.get("/api/v1/dead-letters").content)
    assert sizes and max(sizes) < full, (sizes, full)
    count = int(group.locator("td").nth(2).inner_text())
    assert count == total
    group.get_by_role("button", name="replay").click()
    expect(page.locator("#flash .ok")).to_contain_text(f"Replayed {count} dead letter(s)")
    # with the mapping right again the replays are delivered and leave the list
    wait_for(lambda: not [x for x in c.api("GET", "/dead-letters").json()["dead_letters"] if "NO-SUCH-WC" in x["error"]],
             60, "the replays delivered")
    expect(group).to_have_count(0)
    context.close()
