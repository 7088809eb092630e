"""load() reads datetimes in the context's or the user's time zone and stores UTC, as Odoo 16-19's
ir.fields.converter (``_input_tz``, pytz ``localize(is_dst=False)``) does; create() and write() take UTC."""
from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.sandbox.test_odoo_wire_replay import client, odoo, rpc  # noqa: F401 - fixtures

FIELDS = ["id", "workcenter_id/.id", "loss_id/.id", "date_start", "date_end"]


def load_downtime(client: httpx.Client, xid: str, start: str, context: dict[str, Any] | None = None) -> str:
    kw = {"context": context} if context is not None else {}
    result = rpc(client, "mrp.workcenter.productivity", "load",
                 [FIELDS, [[f"linebridge.{xid}", "1", "2", start, start]]], kw)
    assert result["messages"] == [], result
    (row,) = rpc(client, "mrp.workcenter.productivity", "read", [result["ids"], ["date_start"]])
    return row["date_start"]


@pytest.mark.parametrize("user_tz, context, start, stored", [
    (False, None, "2026-07-01 12:00:00", "2026-07-01 12:00:00"),                              # no zone: UTC
    ("Europe/Brussels", None, "2026-07-01 12:00:00", "2026-07-01 10:00:00"),                  # user's, summer
    ("Europe/Brussels", None, "2026-01-15 12:00:00", "2026-01-15 11:00:00"),                  # user's, winter
    ("Europe/Brussels", {"tz": "UTC"}, "2026-07-01 12:00:00", "2026-07-01 12:00:00"),         # context wins
    (False, {"tz": "America/New_York"}, "2026-07-01 12:00:00", "2026-07-01 16:00:00"),
    ("Europe/Brussels", {"tz": "Not/AZone"}, "2026-07-01 12:00:00", "2026-07-01 10:00:00"),   # unknown: skipped
    ("Europe/Brussels", None, "2026-10-25 02:30:00", "2026-10-25 01:30:00"),  # twice that night: winter time
    ("Europe/Brussels", None, "2026-03-29 02:30:00", "2026-03-29 01:30:00"),  # never that night: winter offset
])
def test_load_converts_datetimes_from_the_context_or_user_time_zone(
        client: httpx.Client, user_tz: Any, context: dict[str, Any] | None, start: str, stored: str) -> None:
    rpc(client, "res.users", "write", [[2], {"tz": user_tz}])
    assert load_downtime(client, "evt_tz", start, context) == stored


def test_create_takes_datetimes_as_utc_whatever_the_user_time_zone(client: httpx.Client) -> None:
    rpc(client, "res.users", "write", [[2], {"tz": "Europe/Brussels"}])
    log = rpc(client, "mrp.workcenter.productivity", "create", [{
        "workcenter_id": 1, "loss_id": 2, "date_start": "2026-07-01 12:00:00", "date_end": "2026-07-01 12:00:00"}])
    assert rpc(client, "mrp.workcenter.productivity", "read", [[log], ["date_start"]])[0]["date_start"] == \
        "2026-07-01 12:00:00"
