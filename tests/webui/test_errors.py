"""A connection's or device's last error: with its time, shown, and gone once it recovers.

Against a real gateway (the demo configuration, the sandbox plant, the Odoo
sandbox): CNC-01 is mapped to a work center Odoo does not have, so its events
are dead-lettered; the Odoo connection must then say so with the reason and
its time instead of a green "idle". Mapped back, the next delivery clears it.
"""
from __future__ import annotations

import time

from drivers.base import DriverHealth
from gateway.sinks.common import SinkStats
from tests.helpers import wait_for
from tests.webui.conftest import Gateway, admin_console


def test_an_error_carries_its_time_and_clears_on_recovery() -> None:
    stats = SinkStats()
    before = time.time()
    stats.last_error = "Odoo refused the call"
    assert stats.as_dict()["last_error_at"] >= before
    stats.dead([(None, "work center 'NOPE' not found in Odoo")])
    stats.settle("idle")
    assert stats.state == "dead-lettering" and "NOPE" in stats.last_error and stats.dead_lettered == 1
    stats.delivered_clean()
    stats.settle("idle")
    assert stats.as_dict()["last_error"] is None and stats.last_error_at is None and stats.state == "idle"
    health = DriverHealth()
    health.last_error = "device cnc01: connection refused"
    assert health.as_dict()["last_error_at"] >= before
    health.connected = True
    assert health.last_error is None and health.last_error_at is None


def test_a_mapping_to_a_missing_work_center_shows_on_the_odoo_connection(gateway: Gateway) -> None:
    c = admin_console(gateway)
    wait_for(lambda: c.api("GET", "/status").json()["sinks"]["odoo"]["delivered"] > 0, 30, "a first delivery")
    machine = c.api("GET", "/machines/CNC-01").json()
    good = machine["section"]
    resp = c.api("PUT", "/machines/CNC-01", {"section": dict(good, work_center="NO-SUCH-WC"),
                                             "version": machine["version"]})
    assert resp.status_code == 200, resp.text

    def odoo() -> dict:
        return c.api("GET", "/status").json()["sinks"]["odoo"]

    wait_for(lambda: odoo()["state"] == "dead-lettering", 30, "the Odoo connection to show the dead letters")
    sink = odoo()
    assert "NO-SUCH-WC" in sink["last_error"] and "dead-lettered" in sink["last_error"], sink
    assert time.time() - 60 < sink["last_error_at"] <= time.time()
    machine = c.api("GET", "/machines/CNC-01").json()
    resp = c.api("PUT", "/machines/CNC-01", {"section": good, "version": machine["version"]})
    assert resp.status_code == 200, resp.text
    wait_for(lambda: odoo()["last_error"] is None, 30, "the error to clear once events are delivered again")
    assert odoo()["state"] in ("idle", "running", "pending") and odoo()["last_error_at"] is None
    c.close()
