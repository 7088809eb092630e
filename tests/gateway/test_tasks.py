"""The task supervisor: a task that dies is logged with its traceback, counted and restarted with capped
backoff; one that keeps dying past its window makes the gateway unhealthy (the watchdog stops)."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from gateway.tasks import Tasks


def run(coro: Any, timeout: float = 20.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_task_that_dies_is_logged_with_its_traceback_counted_and_restarted(caplog):
    caplog.set_level(logging.INFO, logger="linebridge.tasks")
    lives: list[float] = []

    async def work(stop: asyncio.Event) -> None:
        lives.append(time.monotonic())
        if len(lives) <= 3:
            raise OverflowError((34, "Numerical result out of range"))
        await stop.wait()

    async def scenario() -> dict[str, Any]:
        tasks = Tasks(initial=0.05, cap=0.1, stable=5.0, window=60.0)
        tasks.start("sink:odoo", work)
        await until(lambda: len(lives) == 4, 5, "the fourth life")
        status = tasks.status()
        assert tasks.healthy()
        assert await tasks.stop(["sink:odoo"], 2.0)
        assert tasks.status() == {}
        return status

    status = run(scenario())
    assert status["sink:odoo"]["restarts"] == 3
    assert status["sink:odoo"]["state"] == "running"
    assert status["sink:odoo"]["last_error"] == "OverflowError: (34, 'Numerical result out of range')"
    deaths = [r for r in caplog.records if "event=task_died task=sink:odoo" in r.getMessage()]
    assert len(deaths) == 3 and all(r.exc_info and r.exc_info[0] is OverflowError for r in deaths)
    assert "restarts=3" in deaths[-1].getMessage() and deaths[-1].levelname == "ERROR"
    gaps = [b - a for a, b in zip(lives, lives[1:])]
    assert all(0.02 <= g < 1.0 for g in gaps), gaps  # backoff (jittered, capped), not a hot loop


def test_a_task_that_returns_unasked_has_died_too(caplog):
    lives = []

    async def work(stop: asyncio.Event) -> None:
        lives.append(1)
        if len(lives) > 1:
            await stop.wait()

    async def scenario() -> int:
        tasks = Tasks(initial=0.01, cap=0.02)
        tasks.start("heartbeat", work)
        await until(lambda: len(lives) == 2, 5, "a second life")
        restarts = tasks.status()["heartbeat"]["restarts"]
        await tasks.stop_all(2.0)
        return restarts

    assert run(scenario()) == 1
    assert any("TaskEnded" in r.getMessage() for r in caplog.records)


def test_a_task_that_keeps_failing_past_its_window_is_overdue_and_a_stable_run_recovers_it():
    now = [1000.0]
    failing = [True]

    async def work(stop: asyncio.Event) -> None:
        if failing[0]:
            raise RuntimeError("broken")
        await stop.wait()

    async def scenario() -> None:
        tasks = Tasks(initial=0.001, cap=0.002, stable=30.0, window=600.0, clock=lambda: now[0])
        tasks.start("link:up", work)
        await until(lambda: tasks.status()["link:up"]["restarts"] >= 3, 5, "restarts")
        assert tasks.healthy()  # failing, but within its window
        now[0] += 601.0
        await until(lambda: tasks.overdue() == ["link:up"], 5, "overdue")
        assert not tasks.healthy()
        failing[0] = False
        await until(lambda: tasks.status()["link:up"]["state"] == "running", 5, "running again")
        assert not tasks.healthy()  # not yet a stable run
        now[0] += 31.0
        assert tasks.healthy() and tasks.overdue() == []
        await tasks.stop_all(2.0)

    run(scenario())


def test_stop_cancels_a_task_that_does_not_stop_in_time(caplog):
    async def stubborn(stop: asyncio.Event) -> None:
        await asyncio.sleep(3600)

    async def scenario() -> bool:
        tasks = Tasks()
        tasks.start("device:slow", stubborn)
        await asyncio.sleep(0)
        return await tasks.stop(["device:slow"], 0.1)

    assert run(scenario()) is False
    assert any("event=task_cancelled task=device:slow" in r.getMessage() for r in caplog.records)


def test_two_tasks_cannot_share_a_name():
    async def scenario() -> None:
        tasks = Tasks()
        tasks.start("heartbeat", lambda stop: stop.wait())
        with pytest.raises(ValueError):
            tasks.start("heartbeat", lambda stop: stop.wait())
        await tasks.stop_all(1.0)

    run(scenario())


def test_twenty_thousand_deaths_keep_one_record_per_task():
    # what is kept per task does not grow with its deaths (the backoff's own bound: tests/drivers/test_backoff.py)
    async def scenario() -> None:
        deaths = 0

        async def work(stop: asyncio.Event) -> None:
            nonlocal deaths
            deaths += 1
            raise RuntimeError("again")

        tasks = Tasks(initial=1e-6, cap=1e-6, window=1e9)
        logging.getLogger("linebridge.tasks").disabled = True
        try:
            tasks.start("device:x", work)
            await until(lambda: deaths >= 20_000, 60, "20,000 deaths")
        finally:
            logging.getLogger("linebridge.tasks").disabled = False
        assert len(tasks.records) == 1 and tasks.status()["device:x"]["restarts"] >= 20_000
        await tasks.stop_all(1.0)

    run(scenario(), timeout=90)
