"""The sd_notify protocol against a real AF_UNIX datagram socket, in process and from `linebridge run`.

In process: READY=1 waits for the supervisor and the services, WATCHDOG_PID and
a missing NOTIFY_SOCKET are honoured. As a subprocess (`linebridge run` against
the sandbox plant): READY=1, periodic WATCHDOG=1 pings that stop while the
process is stopped with SIGSTOP (a stalled loop) and resume after SIGCONT, a
STATUS= line with the device connected, STOPPING=1 and exit 0 on SIGTERM.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import tempfile
import threading
import time
import uuid
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from gateway import sdnotify
from gateway.demo import demo_config_text
from tests.helpers import free_port, linebridge, port_open, stop, wait_for


class Listener:
    """The systemd side: a bound AF_UNIX datagram socket, each datagram kept with its arrival time."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, list[str]]] = []
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode().split("\n")))

    def times(self, field: str, since: float = 0.0) -> list[float]:
        return [t for t, fields in list(self.messages) if field in fields and t >= since]

    def values(self, key: str) -> list[str]:
        return [f[len(key) + 1:] for _, fields in list(self.messages) for f in fields if f.startswith(key + "=")]

    def close(self) -> None:
        self._closed = True
        self._thread.join(timeout=2)
        self.sock.close()


class FakeSupervisor:
    def __init__(self) -> None:
        self.ready = asyncio.Event()

    def status(self) -> dict[str, Any]:
        return {"devices": {"cnc01": {"connected": True}}, "sinks": {"odoo": {"backlog": 4}}}


async def _turns(n: int = 20) -> None:
    """Let every task on the loop run a few times (what lifecycle would do, it has done)."""
    for _ in range(n):
        await asyncio.sleep(0)


def test_ready_waits_for_the_supervisor_and_the_services_then_stopping_follows_stop():
    address = f"@linebridge-test-{uuid.uuid4().hex}"
    listener = Listener(address)

    async def scenario() -> None:
        sup, stop_ev, services_up = FakeSupervisor(), asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(sdnotify.lifecycle(sup, stop_ev, services_up, env={"NOTIFY_SOCKET": address}))
        sup.ready.set()
        await _turns()
        await asyncio.to_thread(time.sleep, 0.3)  # any datagram sent has arrived by now
        assert listener.times("READY=1") == [], "READY before the services were up"
        services_up.set()
        await asyncio.to_thread(wait_for, lambda: listener.times("READY=1"), 5, "READY=1")
        assert listener.values("STATUS") == ["running: 1/1 device(s) connected, backlog 4"]
        stop_ev.set()
        await asyncio.to_thread(wait_for, lambda: listener.times("STOPPING=1"), 5, "STOPPING=1")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(scenario())
    finally:
        listener.close()
    assert listener.times("WATCHDOG=1") == []  # no WATCHDOG_USEC: no pings


def test_a_start_that_fails_before_ready_still_says_stopping():
    address = f"@linebridge-test-{uuid.uuid4().hex}"
    listener = Listener(address)

    async def scenario() -> None:
        task = asyncio.create_task(sdnotify.lifecycle(FakeSupervisor(), asyncio.Event(), asyncio.Event(),
                                                      env={"NOTIFY_SOCKET": address}))
        await _turns()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(scenario())
        wait_for(lambda: listener.times("STOPPING=1"), 5, "STOPPING=1")
    finally:
        listener.close()
    assert listener.times("READY=1") == []


def test_watchdog_pings_come_from_the_event_loop_so_a_blocked_loop_misses_them():
    address = f"@linebridge-test-{uuid.uuid4().hex}"
    listener = Listener(address)
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"}  # a ping every 0.1 s

    async def scenario() -> tuple[float, float]:
        sup, stop_ev, services_up = FakeSupervisor(), asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(sdnotify.lifecycle(sup, stop_ev, services_up, env=env))
        sup.ready.set()
        services_up.set()
        await asyncio.to_thread(wait_for, lambda: len(listener.times("WATCHDOG=1")) >= 3, 5, "3 pings")
        blocked_at = time.monotonic()
        time.sleep(0.8)  # a driver that blocks the loop: the process lives, the loop does not
        unblocked_at = time.monotonic()
        await asyncio.to_thread(wait_for, lambda: listener.times("WATCHDOG=1", since=unblocked_at), 5,
                                "a ping once the loop runs again")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return blocked_at, unblocked_at

    try:
        blocked_at, unblocked_at = asyncio.run(scenario())
    finally:
        listener.close()
    during = [t for t in listener.times("WATCHDOG=1") if blocked_at + 0.05 < t < unblocked_at]
    assert during == []


def test_watchdog_interval_is_half_the_timeout_and_only_for_our_pid():
    pid = os.getpid()
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid)}) == 15.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid + 1)}) is None
    assert sdnotify.watchdog_interval({}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "soon"}) is None


def test_without_notify_socket_nothing_is_sent_and_lifecycle_returns():
    assert sdnotify.Notifier(None).send("READY=1") is False
    asyncio.run(asyncio.wait_for(sdnotify.lifecycle(FakeSupervisor(), asyncio.Event(), env={}), 2))


def test_a_vanished_notify_socket_is_reported_not_raised(tmp_path, caplog):
    notifier = sdnotify.Notifier(str(tmp_path / "gone.sock"))
    assert notifier.send("WATCHDOG=1") is False and notifier.send("WATCHDOG=1") is False
    assert sum("event=sd_notify_failed" in r.getMessage() for r in caplog.records) == 1
    notifier.close()


@pytest.fixture
def plant(tmp_path):
    port = free_port()
    proc = linebridge(["sandbox", "plant", "--port", str(port), "--seed", "3"], tmp_path / "plant.log")
    try:
        wait_for(lambda: port_open(port), 20, "the sandbox plant to listen")
        yield port
    finally:
        stop(proc, signal.SIGTERM)


def _state(pid: int) -> str:
    """The process state letter from /proc (R, S, T = stopped ...)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def test_linebridge_run_speaks_sd_notify_and_a_stopped_loop_stops_the_watchdog_pings(tmp_path, plant):
    webui_port = free_port()
    cfg = tmp_path / "gateway.toml"
    # Odoo is left unreachable on purpose: the events wait in the store (the backlog)
    cfg.write_text(demo_config_text(webui_port=webui_port).replace("port = 5020", f"port = {plant}")
                   .replace("127.0.0.1:8069", f"127.0.0.1:{free_port()}"))
    sockdir = Path(tempfile.mkdtemp(prefix="lb-notify-"))  # AF_UNIX paths are short: not under tmp_path
    address = str(sockdir / "notify")
    listener = Listener(address)
    watchdog_usec = 2_000_000  # pings every second; systemd would kill after 2 s without one
    gw = linebridge(["run", "--config", str(cfg), "--state-dir", str(tmp_path / "state")], tmp_path / "gw.log",
                    env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": str(watchdog_usec), "WATCHDOG_PID": ""})
    try:
        (ready_at,) = wait_for(lambda: listener.times("READY=1"), 30, "READY=1 from linebridge run")
        if any(ep.name == "webui" for ep in entry_points(group="linebridge.services")):
            assert port_open(webui_port), "READY=1 before the web UI answered"

        # periodic pings, never further apart than the watchdog allows
        wait_for(lambda: len(listener.times("WATCHDOG=1", since=ready_at)) >= 4, 10, "4 WATCHDOG=1 pings")
        pings = listener.times("WATCHDOG=1")
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert max(gaps) < watchdog_usec / 1e6, gaps

        # a stalled process: no pings while it is stopped
        gw.send_signal(signal.SIGSTOP)
        wait_for(lambda: _state(gw.pid) == "T", 5, "the gateway to be stopped")
        stalled_at = time.monotonic()
        time.sleep(3 * watchdog_usec / 2e6)  # three ping intervals
        assert listener.times("WATCHDOG=1", since=stalled_at + 0.2) == []

        # and they come back after SIGCONT, periodically
        gw.send_signal(signal.SIGCONT)
        resumed_at = time.monotonic()
        wait_for(lambda: len(listener.times("WATCHDOG=1", since=resumed_at)) >= 2, 5, "pings after SIGCONT")

        # STATUS= follows the gateway: the device connects, parts wait for Odoo in the backlog
        wait_for(lambda: any(v.startswith("running: 1/1 device(s) connected, backlog ") and not v.endswith(" 0")
                             for v in listener.values("STATUS")),
                 20, f"a STATUS= with the device connected and a backlog (got {listener.values('STATUS')})")

        started = time.monotonic()
        gw.send_signal(signal.SIGTERM)
        wait_for(lambda: listener.times("STOPPING=1"), 10, "STOPPING=1 after SIGTERM")
        assert gw.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
    finally:
        if gw.poll() is None:
            gw.send_signal(signal.SIGCONT)
            stop(gw, signal.SIGKILL)
        listener.close()
        os.unlink(address)
        sockdir.rmdir()


def test_the_watchdog_stops_while_a_supervised_task_keeps_failing_past_its_window_and_resumes_after(caplog):
    from gateway.tasks import Tasks

    address = f"@linebridge-test-{uuid.uuid4().hex}"
    listener = Listener(address)
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"}  # a ping every 0.1 s
    broken = [True]

    async def healthy(stop_ev: asyncio.Event) -> None:
        await stop_ev.wait()

    async def flaky(stop_ev: asyncio.Event) -> None:
        if broken[0]:
            raise OverflowError("math range error")
        await stop_ev.wait()

    async def scenario() -> tuple[float, float, float]:
        sup, stop_ev, services_up = FakeSupervisor(), asyncio.Event(), asyncio.Event()
        sup.tasks = Tasks(window=1.0, initial=0.02, cap=0.05, stable=0.5)  # type: ignore[attr-defined]
        sup.tasks.start("heartbeat", healthy)
        sup.tasks.start("sink:odoo", flaky)
        task = asyncio.create_task(sdnotify.lifecycle(sup, stop_ev, services_up, env=env))
        sup.ready.set()
        services_up.set()
        began = time.monotonic()
        # within its restart window the failing task still lets the pings through
        await asyncio.to_thread(wait_for, lambda: len(listener.times("WATCHDOG=1")) >= 5, 5, "pings")
        assert sup.tasks.status()["sink:odoo"]["restarts"] >= 3
        assert time.monotonic() - began < 1.0
        await asyncio.to_thread(wait_for, lambda: sup.tasks.overdue() == ["sink:odoo"], 5, "overdue")
        overdue_at = time.monotonic()
        await asyncio.sleep(1.0)  # ten ping intervals: systemd would have killed us by now
        broken[0] = False
        fixed_at = time.monotonic()
        await asyncio.to_thread(wait_for, lambda: listener.times("WATCHDOG=1", since=fixed_at), 5,
                                "pings once the task has run stably")
        stop_ev.set()
        await sup.tasks.stop_all(2.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return began, overdue_at, fixed_at

    try:
        began, overdue_at, fixed_at = asyncio.run(scenario())
    finally:
        listener.close()
    assert listener.times("WATCHDOG=1", since=overdue_at + 0.15) and \
        not [t for t in listener.times("WATCHDOG=1") if overdue_at + 0.15 < t < fixed_at + 0.4]
    assert any(v.startswith("failing: sink:odoo") for v in listener.values("STATUS"))
    assert any("event=watchdog_withheld tasks=sink:odoo" in r.getMessage() for r in caplog.records)
    assert any("event=watchdog_resumed" in r.getMessage() for r in caplog.records)
