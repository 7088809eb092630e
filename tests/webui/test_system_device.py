"""The System page tells the device's truth: its own clock and sync state, its SSH server, its version,
and an admin's restart button (webui.hoststate, `POST /api/v1/system/restart`).

The clock and SSH state are read from the kernel and /proc, so the tests give the host something real to
find: a listening socket, processes named like a time daemon and an SSH server. The restart runs against
a gateway of its own: the same process (same PID, as systemd keeps watching it) stops cleanly, runs
itself again, and its console answers with a new start time.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, expect

from gateway import __version__
from tests.helpers import port_open, wait_for
from tests.webui.conftest import Console, Gateway, admin_console, admin_page, start_gateway
from tests.webui.test_browser import LAPTOP, SLOW, go
from webui import hoststate


@pytest.fixture()
def named_process(tmp_path: Path) -> Iterator[callable]:
    """Start `sleep` under a given name (its /proc comm), as a daemon of that name would show."""
    procs: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        exe = tmp_path / name
        shutil.copy(shutil.which("sleep"), exe)
        p = subprocess.Popen([str(exe), "60"])
        procs.append(p)
        wait_for(lambda: (Path("/proc") / str(p.pid) / "comm").read_text().strip() == name[:15], 5, name)
        return p
    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_the_clock_is_the_gateways_own_with_the_kernels_sync_state() -> None:
    c = hoststate.clock()
    assert abs(c["now"] - time.time()) < 1
    assert c["utc"].endswith("+00:00") and c["zone"]
    assert isinstance(c["synchronized"], bool), c      # read from the kernel (adjtimex), not a daemon's file
    assert c["daemons"] == [] or set(c["daemons"]) <= set(hoststate.TIME_DAEMONS.values())


def test_a_time_daemon_of_any_kind_is_named(named_process) -> None:
    named_process("chronyd")
    assert "chrony" in hoststate.clock()["daemons"]
    named_process("systemd-timesyncd")                 # comm keeps 15 characters: systemd-timesyn
    assert {"chrony", "systemd-timesyncd"} <= set(hoststate.clock()["daemons"])


def test_ssh_state_is_true_to_the_device(named_process) -> None:
    before = hoststate.ssh()
    if before["server_running"]:
        pytest.fail(f"this host runs an SSH server already ({before}); the test needs one that does not")
    named_process("sshd")
    assert hoststate.ssh() == {"server_running": True, "daemons": ["sshd"], "port_22_listening": False}


def test_a_listening_port_is_seen_and_a_closed_one_is_not() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
        assert not hoststate.listening(port)
        s.listen()
        assert hoststate.listening(port)
    assert not hoststate.listening(port)


@pytest.fixture(scope="module")
def own_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from start_gateway(tmp_path_factory.mktemp("restart"))


def _started(gw: Gateway) -> list[str]:
    return re.findall(r"event=started version=", gw.log())


def test_the_system_api_reports_clock_ssh_and_version(own_gateway: Gateway) -> None:
    c = admin_console(own_gateway)
    r = c.api("GET", "/system").json()
    assert abs(r["clock"]["now"] - time.time()) < 5
    assert r["ssh"]["device"]["server_running"] in (True, False) and r["ssh"]["managed"] is False
    assert r["about"]["version"] == __version__ and r["about"]["gateway"]
    assert r["can_restart"] is True
    assert c.api("GET", "/about").json()["version"] == __version__
    c.close()


def test_only_an_admin_restarts_and_the_gateway_comes_back_in_the_same_process(own_gateway: Gateway) -> None:
    admin = admin_console(own_gateway)
    assert admin.api("POST", "/users", {"name": "tech", "role": "technician",
                                        "password": "technician pw 1"}).status_code in (200, 201)
    tech = Console(own_gateway)
    assert tech.login("tech", "technician pw 1").status_code == 302
    assert tech.api("POST", "/system/restart").status_code == 403
    assert admin.http.post("/api/v1/system/restart").status_code == 403      # no CSRF token
    before = admin.api("GET", "/about").json()
    starts = len(_started(own_gateway))
    resp = admin.api("POST", "/system/restart")
    assert resp.status_code == 202 and resp.json() == {"restarting": True}
    wait_for(lambda: len(_started(own_gateway)) > starts and port_open(own_gateway.port), 60, "the restart")
    log = own_gateway.log()
    assert "event=restart_requested" in log and "by=admin" in log and "event=stopped" in log
    again = admin_console(own_gateway)                 # sessions lived in the old process's memory
    after = again.api("GET", "/about").json()
    assert after["pid"] == before["pid"] == own_gateway_pid(own_gateway)
    assert after["started"] > before["started"]
    for c in (admin, tech, again):
        c.close()


def own_gateway_pid(gw: Gateway) -> int:
    """The `linebridge run` process of this gateway, found by its state directory on its command line."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmd = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"run" in cmd and str(gw.state_dir).encode() in cmd:
                return int(entry.name)
    raise AssertionError("no gateway process")


def test_the_system_page_shows_the_gateways_clock_and_about(own_gateway: Gateway, browser: Browser) -> None:
    with admin_page(browser, own_gateway, LAPTOP, SLOW) as page:
        go(page, "System")
        expect(page.locator("#clock-now")).to_contain_text("its own zone: UTC")
        expect(page.locator("#clock-skew")).to_have_text("(this browser agrees)")
        expect(page.locator("#ssh-state")).to_have_text("not managed by this console")
        expect(page.locator("#ssh-device")).to_contain_text("SSH server")
        expect(page.locator("#about")).to_contain_text(__version__)
        expect(page.get_by_role("button", name="Restart the gateway")).to_be_visible()
        go(page, "Users")
        admin = Console(own_gateway)
        admin.login()
        if not any(u["name"] == "viewer1" for u in admin.api("GET", "/users").json()["users"]):
            admin.api("POST", "/users", {"name": "viewer1", "role": "viewer", "password": "viewer pw 123"})
        page.reload()
        page.once("dialog", lambda d: d.accept())
        page.get_by_label("Role of viewer1").select_option("technician")
        expect(page.locator("#flash .ok")).to_have_text("viewer1 is now a technician")
        assert {u["name"]: u["role"] for u in admin.api("GET", "/users").json()["users"]}["viewer1"] == "technician"
        page.once("dialog", lambda d: d.accept("a new password 42"))
        page.locator("tr", has_text="viewer1").get_by_role("button", name="reset password").click()
        expect(page.locator("#flash .ok")).to_contain_text("Password of viewer1 reset")
        assert Console(own_gateway).login("viewer1", "a new password 42").status_code == 302
        admin.close()
