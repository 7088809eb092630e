"""The console end to end over HTTPS against a running gateway: setup, login, live values, a change."""
from __future__ import annotations

from tests.helpers import wait_for
from tests.webui.conftest import Console, Gateway, admin_console


def test_setup_login_devices_and_a_live_change(gateway: Gateway) -> None:
    anon = Console(gateway)
    assert anon.http.get("/api/v1/devices").status_code == 401
    assert anon.http.get("/").headers["location"].startswith("/login")
    c = admin_console(gateway)
    assert not (gateway.state_dir / "webui" / "setup-code").exists(), "the setup code is used once"
    values = wait_for(lambda: [v for d in c.api("GET", "/devices").json()["devices"] for v in d["values"]
                               if v["tag"] == "parts" and v["quality"] == "good"], 20, "a live parts value")
    assert isinstance(values[0]["value"], int)
    dev = c.api("GET", "/devices/cnc01").json()
    section = dict(dev["section"], poll_interval=0.25)
    resp = c.api("PUT", "/devices/cnc01", {"section": section, "version": dev["version"]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["saved"]["what"] == "devices.cnc01 changed"
    assert "poll_interval = 0.25" in gateway.config_path.read_text()
    # the stale version is refused, not silently merged
    stale = c.api("PUT", "/devices/cnc01", {"section": section, "version": dev["version"]})
    assert stale.status_code == 409
    bad = c.api("PUT", "/devices/cnc01", {"section": dict(section, port=70000)})
    assert bad.status_code == 422
    assert any("devices.cnc01.port" in p for p in bad.json()["problems"]), bad.json()
    history = c.api("GET", "/config/history").json()["history"]
    assert [(h["who"], h["what"]) for h in history][-2:] == [
        ("admin", "devices.cnc01 changed"), ("as found", "the file before the first change from the console")]
    metrics = c.http.get("/metrics").text
    assert 'linebridge_queue_depth{sink="odoo"}' in metrics
    # every long-lived task of the running process is supervised and counted
    for task in ("sink:odoo", "device:cnc01", "store:committer", "webui:server"):
        assert f'linebridge_task_restarts_total{{task="{task}"}} 0' in metrics, task
    assert "linebridge_healthy 1" in metrics
    status = c.api("GET", "/status").json()
    assert status["healthy"] is True and status["tasks"]["webui:server"]["state"] == "running"
