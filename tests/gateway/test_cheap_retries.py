"""While a peer is away, a failed attempt is a bare TCP connect, and delivery resumes once it listens.

The Odoo sink and the MQTT link, each against a loopback port where nothing
listens, then against the real peer started on that port: the retries go on at
the cost of a refused connect (no HTTP request built, no MQTT client made), are
counted and logged as before, and delivery resumes within seconds of the peer's
return.
"""
from __future__ import annotations

import asyncio
import logging
import time

from gateway.config import OdooSinkConfig
from gateway.sandbox.odoo import OdooSandbox
from gateway.sinks.mqtt.link import MqttLink
from gateway.sinks.odoo import OdooSink
from gateway.sinks.reach import direct_address, unreachable
from store.queue import Store
from tests.drivers.mqtt.broker import MosquittoBroker
from tests.gateway.test_mqtt_sink import sink_config
from tests.gateway.test_odoo_outage import _ev, _wait
from tests.helpers import free_port


def test_the_odoo_sink_retries_with_a_bare_connect_while_odoo_is_away_and_delivers_once_it_listens(
        tmp_path, caplog):
    port = free_port()
    data = tmp_path / "odoo.json"
    sb = OdooSandbox(host="127.0.0.1", port=port, data_path=data, api_key="k")
    sb.start()
    sb.stop()  # the database exists; Odoo is down
    store = Store(tmp_path / "store", sinks=["odoo"])
    cfg = OdooSinkConfig("odoo", f"http://127.0.0.1:{port}", "sandbox", "admin", "k", timeout=2.0,
                         retry_cap=0.001, rate=10000.0, probe_interval=0.5)
    caplog.set_level(logging.WARNING, logger="linebridge.sinks.odoo")

    async def go() -> tuple[int, int, float]:
        sink = OdooSink(cfg, store)
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        store.append([_ev("production", 1, {"quantity": 3}), _ev("alarm", 1, {"code": 9})])
        sink.wake.set()
        await _wait(lambda: sink.stats.retries >= 300, 30, "300 failed attempts")
        retries, calls = sink.stats.retries, sink.client.calls
        assert sink.stats.state == "retrying" and store.backlog("odoo") == 2
        back = OdooSandbox(host="127.0.0.1", port=port, data_path=data, api_key="k")
        back.start()
        t0 = time.monotonic()
        try:
            await _wait(lambda: store.backlog("odoo") == 0, 30, "the backlog to drain")
            elapsed = time.monotonic() - t0
        finally:
            stop.set()
            await task
            back.stop()
        return retries, calls, elapsed

    retries, calls, elapsed = asyncio.run(go())
    # only the first attempt built a request: every later one stopped at the refused connect
    assert calls <= 2, f"{calls} Odoo calls for {retries} failed attempts"
    lines = [r.getMessage() for r in caplog.records if "event=delivery_retry" in r.getMessage()]
    assert len(lines) >= retries  # each counted and logged as a failed delivery attempt
    assert "first_seq=1 events=2" in lines[-1] and "Connection refused" in lines[-1]
    assert elapsed < 5.0


def test_the_mqtt_link_reconnects_with_a_bare_connect_while_the_broker_is_away(tmp_path, caplog):
    broker = MosquittoBroker(tmp_path / "broker")
    cfg = sink_config(broker.port, retry_cap=0.001)
    caplog.set_level(logging.WARNING, logger="linebridge.sinks.mqtt")

    async def go() -> tuple[int, int, float]:
        link = MqttLink(cfg)
        stop = asyncio.Event()
        task = asyncio.create_task(link.run(stop))

        def failures() -> int:
            return sum("event=mqtt_connect_failed" in r.getMessage() for r in caplog.records)

        await _wait(lambda: failures() >= 300, 30, "300 failed connects")
        attempts, clients = failures(), link._gen   # `_gen` counts the MQTT clients made
        await asyncio.to_thread(broker.start)
        t0 = time.monotonic()
        try:
            await _wait(link.connected.is_set, 30, "the link to connect")
            elapsed = time.monotonic() - t0
        finally:
            stop.set()
            await task
        return attempts, clients, elapsed

    try:
        attempts, clients, elapsed = asyncio.run(go())
    finally:
        broker.stop()
    assert clients <= 2, f"{clients} MQTT clients made for {attempts} failed connects"
    assert elapsed < 5.0


def test_a_bare_connect_says_why_and_a_proxy_turns_it_off(monkeypatch):
    port = free_port()
    why = asyncio.run(unreachable("127.0.0.1", port, 1.0))
    assert why == f"cannot connect to 127.0.0.1:{port}: Connection refused"
    assert direct_address(f"http://127.0.0.1:{port}") == ("127.0.0.1", port)
    assert direct_address("https://odoo.example.com") == ("odoo.example.com", 443)
    monkeypatch.setenv("https_proxy", "http://proxy.example.com:3128")
    assert direct_address("https://odoo.example.com") is None  # the way to Odoo goes through the proxy
