"""The trend chart of a tag on the Devices page: the gateway's last hour from memory, drawn as SVG."""
from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.helpers import wait_for
from tests.webui.conftest import Gateway, admin_console, admin_page
from tests.webui.test_browser import LAPTOP, SLOW, go


def test_the_trend_api_serves_a_tags_buckets_and_names_what_it_lacks(gateway: Gateway) -> None:
    c = admin_console(gateway)
    wait_for(lambda: c.api("GET", "/devices/cnc01/trend/parts").status_code == 200, 30, "a trend of parts")
    t = c.api("GET", "/devices/cnc01/trend/parts").json()
    assert t["device"] == "cnc01" and t["tag"] == "parts" and t["step_s"] == 10 and t["window_s"] == 3600
    assert t["points"] and all(len(p) == 4 and p[1] <= p[3] <= p[2] for p in t["points"])
    assert c.api("GET", "/devices/nope/trend/parts").status_code == 404
    missing = c.api("GET", "/devices/cnc01/trend/nope")
    assert missing.status_code == 404 and "cnc01" in missing.json()["error"]
    c.close()


def test_a_technician_opens_the_trend_of_a_tag(gateway: Gateway, browser: Browser) -> None:
    with admin_page(browser, gateway, LAPTOP, SLOW) as page:
        go(page, "Devices")
        page.get_by_role("button", name="Trend of cnc01 parts").click()
        dialog = page.locator("#trend-dialog")
        expect(dialog).to_be_visible()
        expect(dialog.locator("svg polyline.trend-line")).to_have_count(1)
        expect(page.locator("#trend-hint")).to_contain_text("Last ")
        page.get_by_role("button", name="Close").click()
        expect(dialog).to_be_hidden()
