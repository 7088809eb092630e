"""Tags imported from CSV (webui.tagcsv): typed cells, problems by row and column, nothing saved on a
bad file, and the imported tags read by the running gateway."""
from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.helpers import wait_for
from tests.webui.conftest import Gateway, admin_console, admin_page
from tests.webui.test_browser import LAPTOP, SLOW, go
from webui import tagcsv


def test_cells_are_typed_by_key_and_empty_cells_left_out() -> None:
    tags, rows = tagcsv.parse("name,function,address,type,scale,writable\n"
                              "temp,holding,0x10,int16,0.1,false\n"
                              "door,coil,7,bool,,yes\n")
    assert tags == {"temp": {"function": "holding", "address": 16, "type": "int16", "scale": 0.1, "writable": False},
                    "door": {"function": "coil", "address": 7, "type": "bool", "writable": True}}
    assert rows == {"temp": 2, "door": 3}


def test_semicolons_and_a_byte_order_mark_as_spreadsheets_write_them() -> None:
    tags, _ = tagcsv.parse("\ufeffName;Address;Type\r\nspeed;12;uint16\r\n")
    assert tags == {"speed": {"address": 12, "type": "uint16"}}


@pytest.mark.parametrize("text, problem", [
    ("address,type\n1,uint16\n", "row 1: no 'name' column (columns: address, type)"),
    ("name,address\nt1,twelve\n", "row 2 (tag t1), column address: 'twelve' is not a whole number"),
    ("name,address\nt1,1\nt1,2\n", "row 3, column name: tag t1 is also in row 2"),
    ("name,address\nbad name,1\n", "row 2, column name: 'bad name'"),
    ("name,address\nt1,1,extra\n", "row 2: 3 cells for 2 columns"),
    ("", "file: empty"),
])
def test_a_bad_file_names_its_row_and_column(text: str, problem: str) -> None:
    with pytest.raises(tagcsv.CsvRejected) as exc:
        tagcsv.parse(text)
    assert any(p.startswith(problem) for p in exc.value.problems), exc.value.problems


def test_config_problems_are_said_by_row() -> None:
    out = tagcsv.locate(["devices.cnc01.tags.t1.type: must be one of uint16, int16", "other: x"], "cnc01", {"t1": 4})
    assert out == ["row 4 (tag t1), column type: must be one of uint16, int16", "other: x"]


def test_an_import_is_validated_applied_and_read(gateway: Gateway) -> None:
    c = admin_console(gateway)
    bad = c.api("POST", "/devices/cnc01/tags/import", {"csv": "name,function,address,type\nx1,holding,0,float99\n"})
    assert bad.status_code == 422
    assert any(p.startswith("row 2 (tag x1), column type") for p in bad.json()["problems"]), bad.json()
    assert "x1" not in gateway.config_path.read_text()
    ok = c.api("POST", "/devices/cnc01/tags/import", {"csv": "name,function,address,type\nparts_copy,holding,0,uint32\n"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["imported"] == ["parts_copy"]
    assert "[devices.cnc01.tags.parts_copy]" in gateway.config_path.read_text()
    assert c.api("POST", "/devices/nope/tags/import", {"csv": "name\nx\n"}).status_code == 404

    def read() -> bool:
        values = {v["tag"]: v for d in c.api("GET", "/devices").json()["devices"] if d["name"] == "cnc01"
                  for v in d["values"]}
        return "parts_copy" in values and values["parts_copy"]["quality"] == "good"
    wait_for(read, 30, "the imported tag read by the gateway")
    c.close()


def test_a_technician_imports_a_csv_file_on_the_devices_page(gateway: Gateway, browser: Browser, tmp_path) -> None:
    path = tmp_path / "tags.csv"
    path.write_text("name;function;address;type\nrunning_copy;holding;5;uint16\n", encoding="utf-8")
    with admin_page(browser, gateway, LAPTOP, SLOW) as page:
        go(page, "Devices")
        page.once("dialog", lambda d: d.dismiss())          # Cancel: merge
        page.get_by_label("Import tags of cnc01 from CSV").set_input_files(str(path))
        expect(page.locator("#flash .ok")).to_contain_text("Imported 1 tag(s) into cnc01")
        expect(page.locator('#device-cnc01 .v[data-tag="running_copy"]')).to_be_visible()
        expect(page.locator('#device-cnc01 .v[data-tag="parts"]')).to_be_visible()
