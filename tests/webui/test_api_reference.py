"""The OpenAPI document rendered as the console's API reference page, served locally, reached from Identity."""
from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.webui.conftest import Console, Gateway, admin_console, admin_page
from webui.apiref import operations, type_of
from webui.openapi import document


def test_schema_types_read_as_words() -> None:
    assert type_of({"type": "string"}) == "string"
    assert type_of({"type": ["number", "null"]}) == "number or null"
    assert type_of({"type": "array", "items": {"$ref": "#/components/schemas/HistoryEntry"}}) == "array of HistoryEntry"
    assert type_of({"type": "string", "enum": ["merge", "replace"]}) == '"merge" | "replace"'
    assert type_of(None) == "any"


def test_every_operation_of_the_document_is_on_the_page(gateway: Gateway) -> None:
    c = admin_console(gateway)
    served = c.api("GET", "/openapi.json").json()
    ops = operations(served)
    assert len(ops) == sum(1 for item in document()["paths"].values() for m in item if m in ("get", "post", "put", "delete"))
    html = c.http.get("/api-reference")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    for op in ops:
        assert f'id="{op.anchor}"' in html.text, op.path
    # no outside resource: the page works on a line with no internet
    assert "http://" not in html.text and "https://" not in html.text
    c.close()
    assert Console(gateway).http.get("/api-reference").status_code in (302, 303), "the page needs a session"


def test_a_technician_finds_the_api_from_identity_and_reads_an_operation(browser: Browser, gateway: Gateway) -> None:
    with admin_page(browser, gateway) as page:
        page.goto("/identity")
        page.get_by_role("link", name="API reference").click()
        expect(page.locator("main h1")).to_have_text("API reference")
        page.get_by_role("link", name="PUT /api/v1/devices/{name}").click()
        op = page.locator("#put-api-v1-devices-name")
        expect(op).to_be_in_viewport()
        expect(op).to_contain_text("Replace a device")
        params = op.get_by_role("table", name="Parameters of PUT /api/v1/devices/{name}")
        expect(params.locator("tr", has_text="device name")).to_contain_text("path")
        body = op.get_by_role("table", name="Body of PUT /api/v1/devices/{name}")
        expect(body.locator("tr", has_text="section")).to_contain_text("yes")
        expect(op.locator("dl.api-answers")).to_contain_text("409")
        expect(page.get_by_role("link", name="/api/v1/openapi.json", exact=True)).to_have_attribute("href", "/api/v1/openapi.json")
