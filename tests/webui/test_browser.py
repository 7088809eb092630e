"""A technician's first hour with the console, in Debian's chromium driven headless by Playwright.

The gateway starts (a real `linebridge run`) from a configuration that has the
Odoo connection, the machine's work center and the console but no device and no
rule, against the sandbox plant and the Odoo sandbox. In the browser, as a
person would: the one-time setup code read off the gateway's state, the admin
password, the login; a Modbus TCP device added through the form, its test read,
its live part counter rising; the equipment mapping and the rules added so
production reaches Odoo. Then the Odoo key is broken on the Connections page:
the sink pauses with Odoo's authentication error and the events wait in the
backlog (none is dead-lettered: the key is not the events' fault). While it is
broken a counter plausibility limit far too tight for this machine is saved, so
once the key is fixed the backlog is delivered and the part jumps that break the
limit are held as dead letters with the reason. The limit is corrected, the dead
letters replayed from the Queue page, and Odoo's work order then shows exactly
the plant's part count (and its scrap orders exactly the scrap count) as the
gateway read it at that moment: nothing lost, nothing doubled.

With LINEBRIDGE_SCREENSHOTS=1 the test also saves the screenshots of
docs/webui.md under docs/screenshots/ (1280x800, and 1024x600 for a 10-inch
panel PC); without it, it writes nothing outside its temporary directory.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import json
import os
import re
from pathlib import Path
from string import Template
from typing import Any, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.helpers import wait_for
from gateway.demo import scrapped_parts
from tests.webui.a11y import inject_axe, problems_at_every_size
from tests.webui.conftest import Gateway, odoo_call, start_gateway
from tests.webui.pages import VIEWPORTS

PASSWORD = "a long panel password"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LAPTOP = {"width": 1280, "height": 800}
PANEL = {"width": 1024, "height": 600}
#: how long an expectation on the page may take (the pages refresh every 2 to 3 s)
SLOW = 20_000
expect.set_options(timeout=SLOW)

#: The plant's connection, its machine's work center and the console: no device, no rule yet.
CONFIG = Template("""\
[gateway]
id = "line3-gw"
site = "plant-a"

[store]
map_size_mb = 64
max_map_size_mb = 256

[machines.CNC-01]
work_center = "CNC-01"    # mrp.workcenter code in Odoo

[sinks.odoo]
type = "odoo"
url = "$odoo_url"
database = "sandbox"
login = "admin"
api_key = "admin"
protocol = "auto"
timeout = 10.0
rate = 20.0
max_in_flight = 2
loss = "Equipment Failure"
scrap_location = "WH/Stock"

[sinks.odoo.alarm_codes]
101 = { title = "Spindle overload", priority = "3", loss = "Equipment Failure" }
102 = { title = "Coolant low", priority = "1", loss = "Material Availability" }
103 = { title = "Door open", priority = "1", loss = "Setup and Adjustments" }
104 = { title = "Tool breakage", priority = "2" }
105 = { title = "Axis fault", priority = "3" }

[webui]
listen = "127.0.0.1"
port = $ui_port
""")

RULES = {
    "cnc01_parts": {"type": "counter", "device": "cnc01", "tag": "parts", "kind": "production", "width": 32,
                    "initial": "zero"},
    "cnc01_scrap": {"type": "counter", "device": "cnc01", "tag": "scrap", "kind": "scrap", "width": 32,
                    "initial": "zero"},
    "cnc01_alarm": {"type": "alarm", "device": "cnc01", "tag": "alarm", "downtime": True},
}
TAGS = [("parts", "holding", 0, "uint32"), ("scrap", "holding", 2, "uint32"), ("alarm", "holding", 4, "uint16")]


# -- peers ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The Odoo sandbox, the sandbox plant and `linebridge run` with CONFIG (no device, no rule)."""
    yield from start_gateway(tmp_path_factory.mktemp("browser"),
                             lambda _plant, odoo_url, ui_port: CONFIG.substitute(odoo_url=odoo_url, ui_port=ui_port))


@pytest.fixture
def page(browser: Browser, gw: Gateway) -> Iterator[Page]:
    # the console's certificate is made by the gateway on its first start: a person checks its
    # fingerprint on the login page; the test accepts it
    context = browser.new_context(ignore_https_errors=True, viewport=LAPTOP, base_url=gw.base_url)
    context.set_default_timeout(SLOW)
    inject_axe(context)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"script errors on the console's pages: {errors}"


# -- helpers -------------------------------------------------------------------------------------

def shot(page: Page, name: str, viewport: dict[str, int] = LAPTOP, full_page: bool = False) -> None:
    """docs/screenshots/NAME.png at `viewport`, only with LINEBRIDGE_SCREENSHOTS=1."""
    if os.environ.get("LINEBRIDGE_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(viewport)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page, animations="disabled")
    page.set_viewport_size(LAPTOP)


def accessible(page: Page, where: str) -> None:
    """The page as the walk left it passes axe-core and the layout checks at a phone's, a panel's and a
    desktop's size (tests/webui/test_a11y.py checks every page at rest; this checks the states a walk reaches)."""
    problems = problems_at_every_size(page, VIEWPORTS)
    assert not problems, f"{where}:\n" + "\n".join(problems)


def go(page: Page, label: str) -> None:
    """Open a page from the navigation, as a person does, and wait for its heading."""
    page.get_by_role("navigation").get_by_role("link", name=label, exact=True).click()
    expect(page.locator("main h1")).to_have_text(label)


def next_change(page: Page) -> int:
    """The number the next saved change gets in the configuration history."""
    history = page.request.get("/api/v1/config/history").json()["history"]
    return max((e["id"] for e in history), default=0) + 1


def saved(page: Page, change: int) -> None:
    """Change `change` was validated, saved with a history entry and applied (the page says so)."""
    # at the top of the page, or beside the form that was used (Rules & mappings)
    expect(page.locator("#flash .ok, .notice .ok").filter(has_text=re.compile(rf"Saved as change #{change}\b"))).to_be_visible()
    expect(page.locator("#flash .error, .notice .error")).to_have_count(0)


def odoo_counts(gw: Gateway) -> tuple[float, float]:
    """(qty_producing of CNC-01's work orders, validated scrap quantity) as Odoo shows them."""
    (wc,) = odoo_call(gw, "mrp.workcenter", "search", [[["code", "=", "CNC-01"]]])
    orders = odoo_call(gw, "mrp.workorder", "search_read", [[["workcenter_id", "=", wc]]],
                       {"fields": ["qty_producing"]})
    scraps = odoo_call(gw, "stock.scrap", "search_read", [[["state", "=", "done"]]],
                       {"fields": ["scrap_qty", "product_id", "production_id", "origin"]})
    # Playwright's sync API keeps an event loop in this thread: the reconciliation runs in its own
    with ThreadPoolExecutor(1) as pool:
        scrapped = pool.submit(asyncio.run, scrapped_parts(_Planner(gw), scraps)).result()
    return sum(o["qty_producing"] for o in orders), scrapped


class _Planner:
    """`odoo_call` behind the client interface the demo's reconciliation reads Odoo through."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def execute_kw(self, model: str, method: str, args: list[Any], kw: dict[str, Any] | None = None) -> Any:
        return odoo_call(self.gw, model, method, args, kw)


def live(page: Page) -> dict[str, Any]:
    """The gateway's latest reading of each of cnc01's tags, from the API the pages use (this session)."""
    devices = page.request.get("/api/v1/devices").json()["devices"]
    (cnc01,) = [d for d in devices if d["name"] == "cnc01"]
    return {v["tag"]: v["value"] for v in cnc01["values"] if v["quality"] == "good"}


def dead_letters(page: Page) -> list[dict[str, Any]]:
    return page.request.get("/api/v1/dead-letters").json()["dead_letters"]


def value_of(page: Page, tag: str) -> int:
    strong = page.locator(f'#device-cnc01 .v[data-tag="{tag}"] strong')
    expect(strong).to_have_class(re.compile(r"\bq-good\b"))
    return int(strong.inner_text())


# -- the steps -----------------------------------------------------------------------------------

def first_setup(page: Page, gw: Gateway) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/setup$"))
    expect(page.get_by_role("heading", name="First setup")).to_be_visible()
    shot(page, "setup")
    page.get_by_label("Setup code").fill(gw.setup_code())  # as read off the gateway's console
    page.get_by_label("Administrator name").fill("admin")
    page.get_by_label("Password (10 characters or more)").fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create administrator").click()
    expect(page.get_by_role("status")).to_contain_text("Administrator created")
    assert not (gw.state_dir / "webui" / "setup-code").exists(), "the setup code works once"
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/overview$"))
    expect(page.locator("header .who")).to_have_text("admin (admin)")


def add_device(page: Page, gw: Gateway) -> None:
    go(page, "Devices")
    expect(page.locator("#device-list")).to_contain_text("No devices yet")
    page.get_by_role("button", name="Add a device").click()
    dialog = page.locator("#device-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Name").fill("cnc01")
    dialog.get_by_label("Type").select_option("modbus_tcp")
    dialog.get_by_label("Machine").fill("CNC-01")
    dialog.get_by_label("Host").fill("127.0.0.1")
    dialog.get_by_label("Port").fill(str(gw.plant_port))
    dialog.get_by_label("Unit id").fill("1")
    dialog.get_by_label("Poll interval (s)").fill("0.5")
    rows = dialog.locator("#tag-rows tbody tr")
    for i, (tag, table, address, kind) in enumerate(TAGS):
        dialog.get_by_role("button", name="Add a tag").click()
        row = rows.nth(i)
        row.locator(".t-name").fill(tag)
        row.locator(".t-fn").select_option(table)
        row.locator(".t-addr").fill(str(address))
        row.locator(".t-type").select_option(kind)
    dialog.get_by_role("button", name="Test read").click()
    result = dialog.locator("#test-values")
    for tag, *_ in TAGS:
        expect(result.locator("tr", has_text=tag)).to_contain_text("good")
    parts_read = int(result.locator("tr", has_text="parts").locator("td").nth(1).inner_text())
    accessible(page, "the device form after a test read")
    dialog.evaluate("d => { d.scrollTop = d.scrollHeight; }")  # the test read's result in view
    shot(page, "device-dialog")
    change = next_change(page)
    dialog.get_by_role("button", name="Save").click()
    try:
        expect(dialog).to_be_hidden()
    except AssertionError as exc:
        invalid = page.evaluate("() => [...document.querySelectorAll('#device-form :invalid')]"
                                ".map(e => (e.id || e.className) + ': ' + e.validationMessage)")
        raise AssertionError(f"the device was not saved: {dialog.locator('#device-problems').inner_text()!r}, "
                             f"fields the browser refuses: {invalid}") from exc
    saved(page, change)
    # the live value appears, and it is the plant's counter: it rises
    first = value_of(page, "parts")
    assert first >= parts_read
    expect(page.locator('#device-cnc01 .v[data-tag="parts"] strong')).not_to_have_text(str(first))
    assert value_of(page, "parts") > first
    expect(page.locator("#device-cnc01 h2")).to_contain_text("connected")
    shot(page, "devices")
    shot(page, "devices-panel", PANEL)
    assert "[devices.cnc01]" in gw.config_path.read_text(encoding="utf-8")


def add_mapping_and_rules(page: Page) -> None:
    go(page, "Rules & mappings")
    machines = page.locator("#machines-table tbody")
    expect(machines.locator("tr")).to_have_count(1)
    machines.locator("tr", has_text="CNC-01").get_by_role("button", name="edit").click()
    expect(page.get_by_label("Machine", exact=True)).to_have_value("CNC-01")
    page.get_by_label("Equipment serial").fill("CNC-01")   # alarms become maintenance requests on it
    change = next_change(page)
    page.get_by_role("button", name="Save mapping").click()
    saved(page, change)
    expect(machines.locator("tr", has_text="CNC-01").locator("td").nth(2)).to_have_text("CNC-01")
    for name, section in RULES.items():
        save_rule(page, name, section)
    expect(page.locator("#rules-table tbody tr")).to_have_count(len(RULES))
    accessible(page, "Rules & mappings after saving, the rule form open")
    shot(page, "mappings", full_page=True)


def save_rule(page: Page, name: str, section: dict[str, Any]) -> None:
    form = page.locator("#rule-form")
    if not form.is_visible():
        page.get_by_text("Add or replace a rule (JSON)").click()
    form.get_by_label("Name").fill(name)
    form.get_by_label("Settings (JSON)").fill(json.dumps(section, indent=2))
    change = next_change(page)
    form.get_by_role("button", name="Save rule").click()
    saved(page, change)
    expect(page.locator("#rules-table tbody tr", has_text=name)).to_contain_text(section["type"])


def production_reaches_odoo(page: Page, gw: Gateway) -> None:
    go(page, "Overview")
    sink = page.locator("#sink-odoo")
    expect(sink.locator("td").nth(2)).to_have_text(re.compile("idle|running"))
    expect(sink.locator("td").nth(4)).not_to_have_text("0")
    wait_for(lambda: odoo_counts(gw)[0] > 0, 20, "production in Odoo")


def connection_test_passes(page: Page) -> None:
    go(page, "Connections")
    odoo = page.locator("#connection-odoo")
    expect(odoo.get_by_label("api_key")).to_have_value("********")
    odoo.get_by_role("button", name="Test connection").click()
    findings = page.locator("#findings-odoo")
    expect(findings).to_contain_text("OK")
    expect(findings.locator("li.error")).to_have_count(0)
    accessible(page, "Connections with the test's findings")
    shot(page, "connections", full_page=True)


def set_odoo_key(page: Page, key: str) -> None:
    go(page, "Connections")
    page.locator("#connection-odoo").get_by_label("api_key").fill(key)
    change = next_change(page)
    page.get_by_role("button", name="Save", exact=True).click()
    saved(page, change)


def sink_pauses_on_the_wrong_key(page: Page, gw: Gateway) -> None:
    set_odoo_key(page, "not-the-odoo-key")
    # the connection test says so too
    page.get_by_role("button", name="Test connection").click()
    findings = page.locator("#findings-odoo")
    expect(findings.locator(".findings-summary")).to_contain_text("blocker")
    expect(findings.locator("li.error").first).to_contain_text("admin")
    go(page, "Overview")
    sink = page.locator("#sink-odoo")
    expect(sink.locator("td").nth(2)).to_have_text(re.compile(r"^paused\b"))
    # while it waits: when the next try is, and a way to try now
    expect(sink.locator("td").nth(2)).to_contain_text(re.compile(r"next try in \d+"))
    expect(sink.get_by_role("button", name="Retry now")).to_be_visible()
    accessible(page, "the overview with a paused sink")
    # Odoo's refusal, as the sink reports it
    expect(sink.locator("td").nth(6)).to_contain_text("refused login 'admin' on database 'sandbox'")
    # the events wait in the backlog; nothing is dead-lettered for a wrong key
    backlog = page.locator("#card-backlog .value")
    expect(backlog).not_to_have_text("0")
    first = int(backlog.inner_text())
    expect(backlog).not_to_have_text(str(first))
    expect(page.locator("#card-dead .value")).to_have_text("0")
    shot(page, "overview-paused")
    assert dead_letters(page) == []


def dead_letters_then_replay(page: Page, gw: Gateway) -> None:
    # while the key is wrong a technician saves a plausibility limit far below this machine's rate
    # (about 3 parts/s): every poll that sees 2 parts or more is a jump held for a person
    go(page, "Rules & mappings")
    too_tight = dict(RULES["cnc01_parts"], max_rate=0.2)
    save_rule(page, "cnc01_parts", too_tight)
    set_odoo_key(page, "admin")
    go(page, "Overview")
    expect(page.locator("#sink-odoo td").nth(2)).to_have_text(re.compile("idle|running"))
    go(page, "Queue")
    letters = page.locator("#dlq-table tbody tr.dead-letter")
    expect(letters.first).to_contain_text("implausible counter jump held for a person")
    expect(letters.first).to_contain_text("production")
    letters.first.get_by_role("button", name="inspect").click()
    expect(page.locator("#letter")).to_contain_text('"suspect"')
    accessible(page, "the Queue with dead letters, one inspected")
    shot(page, "queue", full_page=True)
    # the limit is put right; then the held jumps are accepted by replaying them
    go(page, "Rules & mappings")
    save_rule(page, "cnc01_parts", dict(RULES["cnc01_parts"], max_rate=50))
    # the events made under the tight limit are all through (delivered or held) before counting
    wait_for(lambda: page.request.get("/api/v1/queue").json()["sinks"]["odoo"]["backlog"] == 0, 20, "the backlog")
    held = len(dead_letters(page))
    assert held > 0
    go(page, "Queue")
    expect(letters).to_have_count(min(held, 50))  # a page of them; the groups count them all
    page.get_by_role("button", name="Replay all").click()
    expect(page.locator("#flash .ok")).to_contain_text(f"Replayed {held} dead letter(s)")
    expect(letters).to_have_count(0)
    expect(page.locator("#journal-verdict")).to_have_class("ok")
    expect(page.locator("#journal-table tbody tr", has_text="replay")).to_contain_text("webui:admin")


def odoo_matches_the_plant(page: Page, gw: Gateway) -> None:
    """At one moment Odoo shows exactly the parts and scrap the gateway read from the plant."""
    seen: list[tuple[Any, ...]] = []

    def matches() -> bool:
        before = live(page)
        parts, scrap = odoo_counts(gw)
        after = live(page)
        seen.append((before, parts, scrap, after))
        return (before == after and parts == before["parts"] and scrap == before["scrap"])

    try:
        # counts reach Odoo at most count_interval (5 s) after their events: a pause of the plant shows them
        wait_for(matches, 60, "Odoo's figures to equal the plant's", interval=0.2)
    except AssertionError:
        raise AssertionError(f"Odoo never showed the plant's count; last checks: {seen[-5:]}") from None
    assert dead_letters(page) == []


def history_with_a_diff(page: Page) -> None:
    go(page, "Config history")
    rows = page.locator("#history-table tbody tr")
    expect(rows.first).to_contain_text("rules.cnc01_parts changed")
    rows.first.get_by_role("button", name="diff").click()
    expect(page.locator("#diff")).to_contain_text("max_rate = 50")
    accessible(page, "Config history with a diff")
    shot(page, "history", full_page=True)


# -- the test ------------------------------------------------------------------------------------

def test_a_technician_sets_up_a_line_breaks_the_key_and_replays_the_dead_letters(page: Page, gw: Gateway) -> None:
    first_setup(page, gw)
    add_device(page, gw)
    add_mapping_and_rules(page)
    production_reaches_odoo(page, gw)
    connection_test_passes(page)
    sink_pauses_on_the_wrong_key(page, gw)
    dead_letters_then_replay(page, gw)
    odoo_matches_the_plant(page, gw)
    history_with_a_diff(page)
    go(page, "Overview")
    expect(page.locator("#card-dead .value")).to_have_text("0")
    expect(page.locator("#sink-odoo td").nth(2)).to_have_text(re.compile("idle|running"))
    shot(page, "overview")
    shot(page, "overview-panel", PANEL)
