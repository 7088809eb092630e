"""The device form at a phone's and a 10-inch panel's size: the test read's result comes into view.

At 1024x600 the result of "Test read" used to land below the dialog's fold
(under its Save bar), so a technician saw nothing happen. Against the demo
gateway's real Modbus device (the sandbox plant), the form is opened, read, and
the result table must be wholly visible between the dialog's top and its
sticky action bar, at every size.
"""
from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.webui.conftest import Gateway, admin_page
from tests.webui.pages import VIEWPORTS

VISIBLE = """() => {
  const dlg = document.getElementById("device-dialog").getBoundingClientRect();
  const bar = document.querySelector("#device-dialog .actions").getBoundingClientRect();
  const r = document.getElementById("test-values").getBoundingClientRect();
  return { top: r.top, bottom: r.bottom, from: Math.max(dlg.top, 0), to: Math.min(bar.top, innerHeight) };
}"""


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_the_test_reads_result_is_in_view(browser: Browser, gateway: Gateway, size: str) -> None:
    with admin_page(browser, gateway, VIEWPORTS[size]) as page:
        page.goto("/devices")
        page.locator("#device-cnc01").get_by_role("button", name="Edit").click()
        dialog = page.locator("#device-dialog")
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name="Test read").click()
        result = dialog.locator("#test-values")
        expect(result.locator("tr", has_text="parts")).to_contain_text("good")
        box = page.evaluate(VISIBLE)
        assert box["from"] - 1 <= box["top"] and box["bottom"] <= box["to"] + 1, \
            f"the test read's result is out of view at {size}: {box}"
