""""Retry now" on a waiting connection, against a real gateway and the Odoo sandbox.

The gateway's Odoo key is wrong (the sandbox accepts another), so the sink is
paused and waits, with a backoff capped at 10 minutes here, before each new
try. The status shows when the next try is; "Retry now" (technician or admin,
with the CSRF token; not a viewer) ends the wait at once: the sink tries again
within seconds instead of minutes.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.helpers import wait_for
from tests.webui.conftest import Console, Gateway, admin_console, demo_config, start_gateway


@pytest.fixture(scope="module")
def waiting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    def config(plant: int, odoo_url: str, ui: int) -> str:
        return demo_config(plant, odoo_url, ui).replace('[sinks.odoo]\n', '[sinks.odoo]\nretry_cap = 600\n', 1)
    yield from start_gateway(Path(tmp_path_factory.mktemp("retry")), config, odoo_api_key="another-key")


def test_retry_now_ends_the_wait_and_the_status_shows_the_next_try(waiting: Gateway) -> None:
    c = admin_console(waiting)

    def odoo() -> dict[str, Any]:
        return c.api("GET", "/status").json()["sinks"]["odoo"]

    # the backoff doubles: wait until the sink's next try is well in the future
    wait_for(lambda: (odoo()["next_retry_at"] or 0) - time.time() > 8, 60, "a long retry wait")
    before = odoo()
    assert before["state"] == "paused" and before["last_error_at"]
    # no CSRF token, no retry
    assert c.http.post("/api/v1/connections/odoo/retry").status_code == 403
    assert c.api("POST", "/users", {"name": "val", "role": "viewer", "password": "a viewer password"}).status_code == 200
    viewer = Console(waiting)
    assert viewer.login("val", "a viewer password").status_code == 302
    assert viewer.api("POST", "/connections/odoo/retry").status_code == 403
    viewer.close()
    assert c.api("POST", "/connections/nowhere/retry").status_code == 404
    started = time.monotonic()
    resp = c.api("POST", "/connections/odoo/retry")
    assert resp.status_code == 200 and resp.json()["waiting"] is True, resp.text
    wait_for(lambda: odoo()["retries"] > before["retries"], 5, "the sink to try again at once")
    assert time.monotonic() - started < before["next_retry_at"] - time.time() + 5
    c.close()
