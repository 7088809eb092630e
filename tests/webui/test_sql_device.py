"""A vendor database in the console (issue #19): an `sql` device is made in the device form (its JSON
settings), and Test read runs its query once, unsaved, against the real database: the first row after no
watermark, as samples, or the database's refusal naming the table or column. Nothing is saved and the
stored watermark of a saved device is not moved (the test driver keeps its own in memory)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.webui.conftest import Gateway, admin_console


def _db(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE cycles (id INTEGER PRIMARY KEY, finished_at TEXT, good INTEGER, scrap INTEGER)")
    con.executemany("INSERT INTO cycles VALUES (?, ?, ?, ?)",
                    [(1, "2026-12-07T06:00:01Z", 120, 2), (2, "2026-12-07T06:00:31Z", 121, 2)])
    con.commit()
    con.close()
    return path


def _section(db: Path, **change: object) -> dict:
    return {"type": "sql", "backend": "sqlite", "database": str(db), "table": "cycles", "watermark": "id",
            "key_column": "id", "timestamp_column": "finished_at", "poll_interval": 0.5,
            "columns": {"parts": "good", "scrap": "scrap"}, **change}


def test_a_test_read_of_an_unsaved_sql_device_runs_its_query_once_and_saves_nothing(gateway: Gateway,
                                                                                     tmp_path: Path) -> None:
    c = admin_console(gateway)
    db = _db(tmp_path / "mes.db")
    before = gateway.config_path.read_text()
    read = c.api("POST", "/devices/mes1/test-read", {"section": _section(db)})
    assert read.status_code == 200, read.text
    got = {s["tag"]: s for s in read.json()["samples"]}
    assert {t: (s["value"], s["quality"]) for t, s in got.items()} == {"parts": (120, "good"), "scrap": (2, "good")}
    assert read.json()["findings"] == []            # the connection test: nothing to fix
    bad = c.api("POST", "/devices/mes1/test-read", {"section": _section(db, columns={"parts": "no_such_column"})})
    assert bad.status_code == 200, bad.text
    body = bad.json()
    said = body.get("error") or " ".join(s.get("error") or "" for s in body["samples"])
    assert any("no_such_column" in f for f in body["findings"]), body
    assert "no_such_column" in said and all(s["quality"] != "good" for s in body["samples"]), body
    assert gateway.config_path.read_text() == before, "test reads save nothing"


def test_the_device_form_offers_the_sql_type(gateway: Gateway) -> None:
    c = admin_console(gateway)
    page = c.http.get("/devices")
    assert page.status_code == 200 and "<option>sql</option>" in page.text
