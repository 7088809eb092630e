"""Reprint from the console, against a running gateway printing to a raw TCP 9100 printer.

Only roles that may operate (technician, admin) reprint; a viewer is refused.
A reprint prints the same label again and is in the journal with who and when.
The Labels page lists what was printed.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import wait_for
from tests.labels.peers import ZplCapture
from tests.webui.conftest import Console, Gateway, admin_console, admin_page, browser, demo_config, start_gateway

__all__ = ["browser"]

ZEBRA = ZplCapture()


@pytest.fixture(scope="module")
def printing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    ZEBRA.start()

    def config(plant: int, odoo_url: str, ui: int) -> str:
        return demo_config(plant, odoo_url, ui) + f"""
[sinks.zebra]
type = "labels"
printer = "zpl://127.0.0.1:{ZEBRA.port}"
timeout = 3
[[sinks.zebra.labels]]
on = "production"
every = 2
template = "box"
[sinks.zebra.templates.box]
width_mm = 50
height_mm = 25
fields = [{{type = "text", data = "BOX {{seq}}/{{label_no}} qty {{quantity}}", x_mm = 2, y_mm = 2}},
          {{type = "qr", data = "{{machine}}:{{seq}}:{{label_no}}", x_mm = 30, y_mm = 2}}]
"""
    try:
        yield from start_gateway(Path(tmp_path_factory.mktemp("labels")), config)
    finally:
        ZEBRA.stop()


def test_an_operator_reprints_a_label_and_the_journal_says_who_and_when(printing: Gateway) -> None:
    c = admin_console(printing)
    wait_for(lambda: len(ZEBRA.labels()) >= 2, 60, "the gateway to print labels")
    printers = c.api("GET", "/labels").json()["printers"]
    (zebra,) = [p for p in printers if p["sink"] == "zebra"]
    assert zebra["printed"] >= 2 and zebra["printer"].startswith("zpl://127.0.0.1:")
    label = zebra["history"][-1]["label"]            # the oldest one kept
    first_text = ZEBRA.labels()[0]["fields"][0]["data"]
    assert first_text == f"BOX {label['values']['seq']}/{label['values']['label_no']} qty 2"

    # a viewer may look, not reprint; no CSRF token, no reprint
    assert c.api("POST", "/users", {"name": "vic", "role": "viewer", "password": "a viewer password"}).status_code == 200
    assert c.api("POST", "/users", {"name": "tom", "role": "technician",
                                    "password": "a technician password"}).status_code == 200
    viewer = Console(printing)
    assert viewer.login("vic", "a viewer password").status_code == 302
    assert viewer.api("GET", "/labels").status_code == 200
    assert viewer.api("POST", f"/labels/zebra/{label['id']}/reprint").status_code == 403
    viewer.close()
    assert c.http.post(f"/api/v1/labels/zebra/{label['id']}/reprint").status_code == 403
    assert c.api("POST", "/labels/zebra/lbl_000000000000000000000000/reprint").status_code == 404
    assert c.api("POST", f"/labels/nowhere/{label['id']}/reprint").status_code == 404

    tech = Console(printing)
    assert tech.login("tom", "a technician password").status_code == 302
    asked = time.time()
    resp = tech.api("POST", f"/labels/zebra/{label['id']}/reprint")
    assert resp.status_code == 200, resp.text
    assert resp.json()["queued"]["by"] == "webui:tom"
    wait_for(lambda: sum(1 for lb in ZEBRA.labels() if lb["fields"][0]["data"] == first_text) == 2, 30,
             "the reprint on paper")
    entries = c.api("GET", "/journal?limit=200").json()["entries"]
    (entry,) = [e for e in entries if e.get("op") == "reprint"]
    assert entry["by"] == "webui:tom" and entry["sink"] == "zebra" and abs(entry["ts"] - asked) < 30
    assert entry["items"] == [[label["event_id"], label["seq"], label["id"]]]
    assert c.api("GET", "/journal?limit=5").json()["verify"]["ok"]     # the chain holds with the reprint in it
    reprinted = wait_for(lambda: [e for e in c.api("GET", "/labels").json()["printers"][0]["history"]
                                  if e.get("reprint_by")], 10, "the reprint in the history")
    assert reprinted[0]["reprint_by"] == "webui:tom" and reprinted[0]["label"]["id"] == label["id"]
    tech.close()
    c.close()


def test_the_labels_page_lists_printed_labels_with_a_reprint_button(printing: Gateway, browser) -> None:
    with admin_page(browser, printing) as page:
        page.goto("/labels")
        page.wait_for_selector("#printed-labels tr.printed-label")
        assert "zpl://127.0.0.1" in page.inner_text("#printers-table")
        assert page.locator("#printed-labels tr.printed-label button", has_text="reprint").first.is_visible()


def test_a_template_preview_is_what_the_printer_gets_filled_with_sample_values(printing: Gateway) -> None:
    c = admin_console(printing)
    resp = c.http.get("/api/v1/labels/zebra/templates/box/preview")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    assert resp.text.startswith("^XA") and "^FDBOX 1/1 qty 50^FS" in resp.text and "^BQN,2," in resp.text
    assert c.http.get("/api/v1/labels/zebra/templates/crate/preview").status_code == 404
    assert c.http.get("/api/v1/labels/odoo/templates/box/preview").status_code == 404
    c.close()
