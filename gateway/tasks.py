"""Supervision of the gateway's long-lived tasks: run, restart with backoff, log each death, count it.

Every task that lives as long as the process (each device, each sink, each MQTT
link, the heartbeat, the store's committer, the web UI's server) is registered
here by name with `Tasks.start(name, work)`. `work(stop)` is a coroutine that
runs until the `stop` event is set and then returns; when it raises, or
returns while nobody asked it to stop, the task has died: the death is logged
with its traceback (`event=task_died task=NAME ...`), counted, and `work` is
called again after a capped, jittered backoff. A run that lasted `stable`
seconds resets the backoff and ends the task's failing streak.

A task whose failing streak (deaths with no stable run in between) has lasted
longer than `window` seconds is *overdue*: the gateway is then no longer
`healthy()`, and `gateway.sdnotify` stops feeding systemd's watchdog, so
systemd restarts the whole process. The figures (`status()`) go to the
supervisor's status, hence /metrics, the heartbeat and the console.

It does not know what the tasks do; cancellation on stop is explicit
(`stop(names, timeout)`: ask, wait, then cancel what is left).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable

from drivers.base import Backoff
from gateway.sinks.common import wait_any

log = logging.getLogger("linebridge.tasks")

#: what a supervised task runs: until the event is set, then return
Work = Callable[[asyncio.Event], Awaitable[None]]

#: defaults: first restart after 0.5..1 s, never more than a minute apart;
#: a run of 30 s is a recovery; failing for 10 minutes stops the watchdog
RESTART_INITIAL_S, RESTART_CAP_S, STABLE_S, WINDOW_S = 1.0, 60.0, 30.0, 600.0


class TaskEnded(Exception):
    """A supervised task returned although nobody asked it to stop."""


@dataclass
class TaskRecord:
    """What the supervisor knows about one task, for status pages and the watchdog."""

    name: str
    state: str = "running"             # running | restarting | stopping | dead (not restarted: a bug)
    restarts: int = 0                  # deaths followed by a restart, since the task was registered
    last_error: str | None = None
    last_death: float | None = None    # wall clock, for people
    running_since: float = 0.0         # the supervisor's clock
    failing_since: float | None = None  # first death of the current streak, the supervisor's clock

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "restarts": self.restarts, "last_error": self.last_error,
                "last_death": self.last_death}


class Tasks:
    """The one owner of the gateway's long-lived tasks."""

    def __init__(self, *, window: float = WINDOW_S, initial: float = RESTART_INITIAL_S,
                 cap: float = RESTART_CAP_S, stable: float = STABLE_S,
                 clock: Callable[[], float] = time.monotonic, rng: Callable[[], float] = random.random) -> None:
        self.window, self.initial, self.cap, self.stable = window, initial, cap, stable
        self.clock, self._rng = clock, rng
        self.records: dict[str, TaskRecord] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stops: dict[str, asyncio.Event] = {}

    # -- registering and stopping --------------------------------------------------------

    def start(self, name: str, work: Work) -> None:
        """Run `work` as the supervised task `name` (unique among the running ones)."""
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is already running")
        stop = self._stops[name] = asyncio.Event()
        record = self.records[name] = TaskRecord(name, running_since=self.clock())
        task = self._tasks[name] = asyncio.create_task(self._supervise(record, work, stop), name=name)
        task.add_done_callback(lambda t: self._reap(t, record))

    def running(self, name: str) -> bool:
        return name in self._tasks

    def ask_to_stop(self, names: Iterable[str]) -> None:
        """Set the stop events of `names` without waiting (before closing what they wait on)."""
        for n in names:
            stop = self._stops.get(n)
            if stop is not None:
                stop.set()
                self.records[n].state = "stopping"

    async def stop(self, names: Iterable[str], timeout: float) -> bool:
        """Let the tasks `names` end within `timeout`, then cancel the rest; True if none was cancelled.

        Their records go with them: a task started again under the same name starts counting afresh.
        """
        names = [n for n in names if n in self._tasks]
        self.ask_to_stop(names)
        tasks = [self._tasks.pop(n) for n in names]
        for n in names:
            self._stops.pop(n, None)
            self.records.pop(n, None)
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for t in pending:
            log.warning("event=task_cancelled task=%s reason=did_not_stop_within_%gs", t.get_name(), timeout)
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return not pending

    async def stop_all(self, timeout: float) -> bool:
        return await self.stop(list(self._tasks), timeout)

    # -- health ------------------------------------------------------------------------

    def overdue(self) -> list[str]:
        """The tasks that have kept failing for longer than `window`, oldest streak first."""
        now = self.clock()
        late = []
        for rec in list(self.records.values()):
            if rec.failing_since is None:
                continue
            if rec.state == "running" and now - rec.running_since >= self.stable:
                continue  # recovered: its streak ends at its next death or never
            if now - rec.failing_since > self.window:
                late.append((rec.failing_since, rec.name))
        return [n for _, n in sorted(late)]

    def healthy(self) -> bool:
        """Every task is running, or restarting within its budget (`window`)."""
        return not self.overdue()

    def status(self) -> dict[str, dict[str, Any]]:
        return {n: r.as_dict() for n, r in sorted(self.records.items())}

    @property
    def restarts(self) -> int:
        return sum(r.restarts for r in self.records.values())

    # -- the supervising loop ----------------------------------------------------------

    async def _supervise(self, rec: TaskRecord, work: Work, stop: asyncio.Event) -> None:
        backoff = Backoff(initial=self.initial, cap=self.cap, rng=self._rng)
        while not stop.is_set():
            rec.state, rec.running_since = "running", self.clock()
            try:
                await work(stop)
                if stop.is_set():
                    break
                raise TaskEnded("the task returned without being asked to stop")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                ran = self.clock() - rec.running_since
                if stop.is_set():  # dying while being stopped: said, not restarted
                    log.error("event=task_failed_while_stopping task=%s error=%r", rec.name, _why(exc),
                              exc_info=exc)
                    break
                if ran >= self.stable:
                    backoff.reset()
                    rec.failing_since = None
                if rec.failing_since is None:
                    rec.failing_since = self.clock()
                delay = backoff.next_delay()
                rec.restarts += 1
                rec.last_error, rec.last_death, rec.state = _why(exc), time.time(), "restarting"
                log.error("event=task_died task=%s restarts=%d ran_s=%.1f failing_s=%.1f restart_in=%.2fs "
                          "error=%r", rec.name, rec.restarts, ran, self.clock() - rec.failing_since, delay,
                          rec.last_error, exc_info=exc)
                await wait_any(stop, timeout=delay)
                if not stop.is_set():
                    log.info("event=task_restarted task=%s restarts=%d", rec.name, rec.restarts)

    def _reap(self, task: asyncio.Task[None], rec: TaskRecord) -> None:
        """A supervising loop that failed (a bug here, never the task's): said, and overdue at once."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        rec.state, rec.last_error = "dead", _why(exc)  # type: ignore[arg-type]
        rec.failing_since = float("-inf")
        log.critical("event=supervision_failed task=%s error=%r", rec.name, rec.last_error, exc_info=exc)


def _why(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
