"""Odoo away, Odoo refusing the key: the sink waits, paces itself and loses nothing.

An outage of minutes is compressed to seconds here (the retry cap is lowered
to match); what is checked is the same: no event is lost or doubled, the
backlog drains in order afterwards, calls stay within the configured rate, and
a refused key pauses the sink without a login storm.
"""
from __future__ import annotations

import asyncio
import logging
import time

from gateway.config import OdooSinkConfig
from gateway.events import Event, event_id
from gateway.sandbox.odoo import OdooSandbox
from gateway.sinks.odoo import OdooClient, OdooSink
from store.queue import Store
from tests.helpers import free_port

CTX = {"machine": "CNC-01", "work_center": "CNC-01", "equipment": "CNC-01"}


def _ev(kind: str, n: int, data: dict) -> dict:
    return Event(id=event_id("gw", "cnc01/x", f"{kind}{n}"), kind=kind, ts="2026-11-23T07:00:00.000Z",
                 gateway="gw", source={"device": "cnc01", "tag": "x"}, data=data, context=dict(CTX)).to_dict()


async def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def test_odoo_down_then_up_the_backlog_drains_in_order_at_the_configured_pace(tmp_path):
    port = free_port()
    data = tmp_path / "odoo.json"
    sb = OdooSandbox(host="127.0.0.1", port=port, data_path=data, api_key="k")
    sb.start()
    store = Store(tmp_path / "store", sinks=["odoo"])
    cfg = OdooSinkConfig("odoo", f"http://127.0.0.1:{port}", "sandbox", "admin", "k", timeout=2.0,
                         batch_size=5, retry_cap=1.5, rate=10.0, max_in_flight=1, count_interval=0)

    async def go():
        sink = OdooSink(cfg, store)
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        store.append([_ev("production", i, {"quantity": 1}) for i in range(3)])
        sink.wake.set()
        await _wait(lambda: store.backlog("odoo") == 0, 20, "the first events")
        sb.stop()  # Odoo goes away
        store.append([_ev("production", i, {"quantity": 1}) for i in range(3, 23)]
                     + [_ev("scrap", 1, {"quantity": 2}), _ev("alarm", 1, {"code": 9})])
        sink.wake.set()
        await _wait(lambda: sink.stats.retries >= 3, 30, "several failed attempts")
        assert sink.stats.state == "retrying" and store.backlog("odoo") == 22
        back = OdooSandbox(host="127.0.0.1", port=port, data_path=data, api_key="k")
        back.start()  # Odoo is back, with everything it had acknowledged
        calls_before, t0 = sink.client.calls, time.monotonic()
        await _wait(lambda: store.backlog("odoo") == 0, 60, "the backlog to drain")
        elapsed, calls = time.monotonic() - t0, sink.client.calls - calls_before
        stop.set()
        await task
        return back, calls, elapsed

    back, calls, elapsed = asyncio.run(go())
    try:
        async def state():
            c = OdooClient(back.url, "sandbox", "admin", "k")
            try:
                wo = await c.execute_kw("mrp.workorder", "search_read", [[]], {"fields": ["qty_producing"]})
                scrap = await c.execute_kw("stock.scrap", "search_read", [[]], {"fields": ["scrap_qty", "state"]})
                reqs = await c.execute_kw("maintenance.request", "search_count", [[]])
                return wo, scrap, reqs
            finally:
                await c.close()
        wo, scrap, reqs = asyncio.run(state())
    finally:
        back.stop()
    assert wo[0]["qty_producing"] == 23.0
    assert sorted((s["scrap_qty"], s["state"]) for s in scrap) == [(2.0, "done"), (8.0, "done")] and reqs == 1
    seqs = [item[1] for e in store.journal_entries(1000) for item in e["items"]]
    assert seqs == sorted(seqs) and len(seqs) == 25  # in order, each once
    assert calls <= 10.0 * elapsed + 10  # within the token bucket: rate 10/s plus its burst


def test_delivery_resumes_within_seconds_of_odoo_answering_again_whatever_the_backoff(tmp_path):
    """The backoff grew long during the outage; a cheap probe ends the wait when Odoo is back."""
    port = free_port()
    data = tmp_path / "odoo.json"
    sb = OdooSandbox(host="127.0.0.1", port=port, data_path=data, api_key="k")
    sb.start()
    sb.stop()  # the database exists; Odoo is down
    store = Store(tmp_path / "store", sinks=["odoo"])
    cfg = OdooSinkConfig("odoo", f"http://127.0.0.1:{port}", "sandbox", "admin", "k", timeout=2.0,
                         retry_cap=60.0, probe_interval=0.5)

    async def go():
        sink = OdooSink(cfg, store)
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        store.append([_ev("alarm", 1, {"code": 9})])
        sink.wake.set()
        # the outage goes on until a retry waits 8 s or more
        await _wait(lambda: sink.stats.extra.get("retry_in", 0) >= 8, 60, "a long backoff")
        back = OdooSandbox(host="127.0.0.1", port=port, data_path=data, api_key="k")
        back.start()
        t0 = time.monotonic()
        await _wait(lambda: store.backlog("odoo") == 0, 30, "the alarm")
        elapsed = time.monotonic() - t0
        stop.set()
        await task
        back.stop()
        return elapsed

    assert asyncio.run(go()) < 5.0


def test_a_refused_key_pauses_the_sink_with_an_alarm_and_no_login_storm(tmp_path, caplog):
    sb = OdooSandbox(host="127.0.0.1", port=0, data_path=None, api_key="right")
    sb.start()
    store = Store(tmp_path / "store", sinks=["odoo"])
    store.append([_ev("production", 1, {"quantity": 1})])
    logins = []

    class CountingClient(OdooClient):
        async def authenticate(self) -> int:
            logins.append(time.monotonic())
            return await super().authenticate()

    cfg = OdooSinkConfig("odoo", sb.url, "sandbox", "admin", "revoked", timeout=2.0, retry_cap=2.0)

    async def go():
        sink = OdooSink(cfg, store, client=CountingClient(sb.url, "sandbox", "admin", "revoked"))
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        await asyncio.sleep(5.0)  # observe the sink over a fixed window: the count of logins is the point
        state = sink.stats.state
        stop.set()
        await task
        return state

    with caplog.at_level(logging.WARNING, logger="linebridge.sinks.odoo"):
        state = asyncio.run(go())
    sb.stop()
    assert state == "paused" and store.backlog("odoo") == 1 and store.dead_letters() == []
    assert 2 <= len(logins) <= 8, f"{len(logins)} logins in 5 s"
    assert any("event=alarm_sink_paused" in r.getMessage() for r in caplog.records)
