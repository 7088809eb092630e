"""The OEE page and its CSV export, on a running gateway whose store holds three days of kept OEE."""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, expect

from gateway.oee import DayTally, day_record, history_bytes, history_key, shift_record
from store.queue import Store
from tests.helpers import wait_for
from tests.webui.conftest import Gateway, admin_console, admin_page, start_gateway
from tests.webui.test_browser import LAPTOP, SLOW, go

DAY_S = 86400


def _seed(state: Path) -> list[dict]:
    """Three closed days of CNC-01 (three shifts each, one without an ideal cycle), kept as the gateway keeps them."""
    today = int(time.time() // DAY_S) * DAY_S
    records = []
    for d in (3, 2, 1):
        start = today - d * DAY_S + 6 * 3600
        day = DayTally(time.strftime("%Y-%m-%d", time.gmtime(start)), start, start)
        for i, name in enumerate(("early", "late", "night")):
            s = start + i * 8 * 3600
            ideal = None if (d, name) == (2, "night") else 0.25
            rec = shift_record("CNC-01", name, day.day, s, s + 8 * 3600, 8 * 3600, 1800 * (i + 1),
                               90_000 - 5000 * d, 900, ideal)
            records.append(rec)
            day = day.add(8 * 3600, 1800 * (i + 1), rec["good"], rec["scrap"], s + 8 * 3600, ideal)
        records.append(day_record("CNC-01", day))
    store = Store(state / "store")
    try:
        for rec in records:
            store.put_state(history_key(rec), history_bytes(rec))
    finally:
        store.close()
    return records


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, list[dict]]]:
    tmp = tmp_path_factory.mktemp("oee")
    records = _seed(tmp / "state")
    for gw in start_gateway(tmp):
        yield gw, records


def test_the_oee_api_serves_the_running_shift_and_the_kept_shifts_and_days(seeded) -> None:
    gw, records = seeded
    c = admin_console(gw)
    try:
        wait_for(lambda: c.api("GET", "/oee").json()["machines"]["CNC-01"]["running"], 30, "a running shift")
        o = c.api("GET", "/oee").json()
        assert o["timezone"] == "UTC" and o["shift_names"] == ["early", "late", "night"]
        m = o["machines"]["CNC-01"]
        assert m["running"]["period"] == "running" and m["running"]["ideal_cycle_s"] == 0.25
        assert m["shifts"] == [r for r in records if r["period"] == "shift"]
        assert m["days"] == [r for r in records if r["period"] == "day"]
        assert [d["day"] for d in c.api("GET", "/oee?days=1").json()["machines"]["CNC-01"]["days"]] == [
            records[-1]["day"]]
    finally:
        c.close()


def test_the_csv_export_has_a_row_per_kept_shift_and_day_and_the_running_shift(seeded) -> None:
    gw, records = seeded
    c = admin_console(gw)
    try:
        resp = c.api("GET", "/oee/export.csv?machine=CNC-01")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
        assert 'filename="oee-CNC-01-' in resp.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(resp.text)))
        assert [r["period"] for r in rows] == ["shift"] * 9 + ["day"] * 3 + ["running"]
        first = rows[0]
        assert (first["machine"], first["shift"], first["availability"]) == ("CNC-01", "early",
                                                                            str(records[0]["availability"]))
        no_ideal = next(r for r in rows if r["shift"] == "night" and r["day"] == records[4]["day"])
        assert no_ideal["performance"] == "" and no_ideal["oee"] == ""   # unknown, not zero
        days = list(csv.DictReader(io.StringIO(c.api("GET", "/oee/export.csv?period=day").text)))
        assert [r["day"] for r in days] == [r["day"] for r in records if r["period"] == "day"]
        assert c.api("GET", "/oee/export.csv?machine=nope").status_code == 404
        assert c.api("GET", "/oee/export.csv?period=week").status_code == 400
    finally:
        c.close()


def test_a_plant_manager_sees_each_machines_oee_and_its_charts(seeded, browser: Browser) -> None:
    gw, records = seeded
    with admin_page(browser, gw, LAPTOP, SLOW) as page:
        go(page, "OEE")
        machine = page.locator('section.oee-machine[data-machine="CNC-01"]')
        expect(machine.locator("h2")).to_have_text("CNC-01")
        expect(machine.locator('tr[data-period="running"]')).to_have_count(1)
        expect(machine.locator('tr[data-period="running"] td').first).to_contain_text("(running")
        expect(machine.locator('tr[data-period="day"]')).to_have_count(3)
        shifts_chart = machine.locator('[data-chart="shifts"] svg')
        # one bar per shift with an OEE (one kept shift has no ideal cycle), plus the running one's if known
        known = sum(1 for r in records if r["period"] == "shift" and r["oee"] is not None)
        assert known == 8
        wait_for(lambda: shifts_chart.locator("rect.oee-bar").count() >= known, 20, "the shift bars")
        expect(shifts_chart.locator("polyline.oee-availability")).to_have_count(1)
        expect(machine.locator('[data-chart="days"] svg rect.oee-bar')).to_have_count(3)
        link = machine.get_by_role("link", name="CNC-01 as CSV")
        expect(link).to_have_attribute("href", "/api/v1/oee/export.csv?machine=CNC-01")
