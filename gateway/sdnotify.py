"""systemd's notify protocol for the gateway process: READY, STATUS, WATCHDOG and STOPPING.

It owns the datagrams sent to `$NOTIFY_SOCKET` (a path, or an abstract socket
written with a leading '@') and the gateway's side of the service life cycle:
READY=1 once the supervisor and the services are up, a STATUS= summary of the
devices and the backlog, WATCHDOG=1 every half `$WATCHDOG_USEC` from a task on
the main asyncio loop (so a stalled loop, not only a dead process, misses its
pings and systemd restarts it) and STOPPING=1 when the gateway stops. The pings
also stop while the supervisor's tasks are not healthy (`Tasks.healthy()`: one
of them has kept dying for longer than `[gateway] restart_window_s`), so
systemd restarts a process whose restarts in place do not help. Without
`$NOTIFY_SOCKET` (not started by systemd) every call is a no-op. It does not
decide when the gateway is ready or stops: the supervisor and the CLI do.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any, Mapping, Protocol

log = logging.getLogger("linebridge.sdnotify")


class Notifier:
    """Sends notify datagrams; never raises and never blocks the loop (a full queue drops one)."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._sock: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Notifier":
        return cls(env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send `fields` ("READY=1", "STATUS=...") as one datagram; True if it went out."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(fields).encode("utf-8"), target)
        except OSError as exc:
            if not self._failing:  # one line per outage, not one per ping
                log.warning("event=sd_notify_failed socket=%s error=%r", self.address, str(exc))
            self._failing = True
            return False
        if self._failing:
            log.info("event=sd_notify_recovered socket=%s", self.address)
            self._failing = False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(env: Mapping[str, str] = os.environ, pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of `$WATCHDOG_USEC`), or None if not asked for us."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner and owner != str(pid if pid is not None else os.getpid()):
        return None
    return usec / 2_000_000


class Supervised(Protocol):
    """What the life cycle needs of the supervisor (and, when it has them, its `tasks`: see `Health`)."""

    ready: asyncio.Event

    def status(self) -> dict[str, Any]: ...


class Health(Protocol):
    """The supervised tasks' verdict (gateway.tasks.Tasks)."""

    def overdue(self) -> list[str]: ...


def status_line(status: Mapping[str, Any]) -> str:
    """A one-line summary of `Supervisor.status()` for `systemctl status`."""
    devices = status.get("devices", {})
    up = sum(1 for health in devices.values() if health.get("connected"))
    sinks = status.get("sinks", {})
    backlog = sum(int(s.get("backlog") or 0) for s in sinks.values())
    per_sink = ", ".join(f"{name} {int(s.get('backlog') or 0)}" for name, s in sorted(sinks.items()))
    return f"{up}/{len(devices)} device(s) connected, backlog {backlog}" + (f" ({per_sink})" if len(sinks) > 1 else "")


async def _ping(notifier: Notifier, interval: float, health: Health | None = None) -> None:
    """WATCHDOG=1 every `interval`, while no supervised task is overdue."""
    withheld: list[str] = []
    while True:
        overdue = health.overdue() if health is not None else []
        if not overdue:
            if withheld:
                log.warning("event=watchdog_resumed tasks=%s", ",".join(withheld))
                withheld = []
            notifier.send("WATCHDOG=1")
        elif overdue != withheld:
            withheld = overdue
            log.critical("event=watchdog_withheld tasks=%s reason=failing_past_restart_window "
                         "effect=systemd_restarts_the_process", ",".join(overdue))
            notifier.send("STATUS=failing: " + ", ".join(overdue) + " kept failing; waiting for the watchdog")
        await asyncio.sleep(interval)


async def _report(notifier: Notifier, supervisor: Supervised, every: float, last: str) -> None:
    """Send STATUS= every `every` seconds when the summary has changed since `last`."""
    while True:
        await asyncio.sleep(every)
        try:
            line = "running: " + status_line(supervisor.status())
        except Exception as exc:  # a status figure that fails must not end the reports
            log.warning("event=sd_notify_status_failed error=%r", str(exc))
            continue
        if line != last and notifier.send("STATUS=" + line):
            last = line


async def _first(*events: asyncio.Event) -> None:
    """Return once any of `events` is set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def lifecycle(supervisor: Supervised, stop: asyncio.Event, services_up: asyncio.Event | None = None,
                    *, notifier: Notifier | None = None, env: Mapping[str, str] = os.environ,
                    status_every: float = 5.0) -> None:
    """Tell systemd about the gateway from start to stop; run it as a task of the main loop.

    Watchdog pings start at once (a slow start must not look like a stall) and go on
    until the task is cancelled, after the supervisor has stopped. READY=1 waits for
    `supervisor.ready` and `services_up`; STOPPING=1 goes out as soon as `stop` is set
    (or when the task is cancelled before that: a start that failed).
    """
    notifier = notifier or Notifier.from_env(env)
    if not notifier.enabled:
        return
    interval = watchdog_interval(env)
    # the pinger and the reporter are this coroutine's own: cancelled in `finally`, never restarted
    # (the pinger is what notices that the supervised tasks are failing)
    health = getattr(supervisor, "tasks", None)
    pinger = (asyncio.create_task(_ping(notifier, interval, health), name="sd_notify:watchdog")
              if interval is not None else None)
    reporter: asyncio.Task[None] | None = None
    stopping_sent = False
    try:
        for event in (supervisor.ready, services_up):
            if event is not None:
                await _first(event, stop)
        if not stop.is_set():
            line = "running: " + status_line(supervisor.status())
            notifier.send("READY=1", "STATUS=" + line)
            log.info("event=sd_notify_ready watchdog_interval_s=%s", interval)
            reporter = asyncio.create_task(_report(notifier, supervisor, status_every, line),
                                           name="sd_notify:status")
            await stop.wait()
            reporter.cancel()
        notifier.send("STOPPING=1", "STATUS=stopping: draining the sinks, closing the store")
        stopping_sent = True
        await asyncio.Event().wait()  # the pings go on through the shutdown, until cancelled
    finally:
        if not stopping_sent:
            notifier.send("STOPPING=1")
        tasks = [t for t in (pinger, reporter) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        notifier.close()
