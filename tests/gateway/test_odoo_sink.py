"""The Odoo sink against the Odoo sandbox: production recorded once, errors classified."""
from __future__ import annotations

import asyncio

import pytest

from gateway.config import OdooSinkConfig
from gateway.errors import AuthDeliveryError, TransientDeliveryError
from gateway.events import Event, event_id
from gateway.sandbox.odoo import OdooSandbox
from gateway.sinks.odoo import OdooClient, OdooSink
from store.queue import Store
from tests.helpers import free_port


@pytest.fixture()
def odoo(tmp_path):
    sb = OdooSandbox(host="127.0.0.1", port=0, data_path=tmp_path / "odoo.json", api_key="secret-key")
    sb.start()
    yield sb
    sb.stop()


def _cfg(url: str, key: str = "secret-key") -> OdooSinkConfig:
    return OdooSinkConfig("odoo", url, "sandbox", "admin", key, timeout=5.0)


def _event(total: int, qty: int, work_center: str = "CNC-01") -> dict:
    return Event(id=event_id("gw", "cnc01/parts", f"0:{total}"), kind="production",
                 ts="2026-11-28T03:00:00.000Z", gateway="gw", source={"device": "cnc01", "tag": "parts"},
                 data={"quantity": qty, "counter": total, "total": total, "reset": False},
                 context={"machine": "CNC-01", "work_center": work_center}).to_dict()


async def _workorder(url: str) -> dict:
    client = OdooClient(url, "sandbox", "admin", "secret-key")
    try:
        (wc,) = await client.execute_kw("mrp.workcenter", "search", [[["code", "=", "CNC-01"]]])
        (wo,) = await client.execute_kw("mrp.workorder", "search_read", [[["workcenter_id", "=", wc]]],
                                        {"fields": ["qty_producing", "production_id"]})
        (mo,) = await client.execute_kw("mrp.production", "read", [[wo["production_id"][0]]],
                                        {"fields": ["qty_producing", "name"]})
        return {"wo": wo["qty_producing"], "mo": mo["qty_producing"], "mo_name": mo["name"]}
    finally:
        await client.close()


async def _drain(sink: OdooSink, store: Store) -> None:
    while batch := store.read(sink.name, 100):
        await sink.deliver(batch)


def test_production_is_recorded_on_the_open_work_order_as_an_absolute_quantity(odoo, tmp_path):
    store = Store(tmp_path / "store", sinks=["odoo"])
    store.append([_event(3, 3), _event(5, 2), _event(9, 4)])

    async def go():
        sink = OdooSink(_cfg(odoo.url), store)
        await _drain(sink, store)
        await sink.client.close()
        return sink.stats, await _workorder(odoo.url)

    stats, wo = asyncio.run(go())
    assert wo == {"wo": 9.0, "mo": 9.0, "mo_name": "WH/MO/00001"}
    assert stats.delivered == 3 and stats.dead_lettered == 0 and store.backlog("odoo") == 0


def test_a_delivery_repeated_after_a_crash_before_the_ack_changes_nothing(odoo, tmp_path):
    store = Store(tmp_path / "store", sinks=["odoo"])
    store.append([_event(4, 4), _event(6, 2)])

    class Crash(Exception):
        pass

    def crashing_ack(*args, **kwargs):
        raise Crash("power cut between Odoo's answer and the acknowledgement")

    async def go():
        first = OdooSink(_cfg(odoo.url), store)
        real_ack, store.ack = store.ack, crashing_ack
        with pytest.raises(Crash):
            await first.deliver(store.read("odoo"))
        await first.client.close()
        store.ack = real_ack
        after_crash = await _workorder(odoo.url)
        second = OdooSink(_cfg(odoo.url), store)  # the restarted gateway
        await _drain(second, store)
        await second.client.close()
        return after_crash, await _workorder(odoo.url)

    after_crash, final = asyncio.run(go())
    assert after_crash["wo"] == 6.0 and final["wo"] == 6.0
    assert store.backlog("odoo") == 0


def test_the_same_event_appended_twice_is_delivered_once(odoo, tmp_path):
    store = Store(tmp_path / "store", sinks=["odoo"])
    store.append([_event(2, 2)])
    store.append([_event(2, 2)])  # a replayed signal: same id

    async def go():
        sink = OdooSink(_cfg(odoo.url), store)
        await _drain(sink, store)
        await sink.client.close()
        return await _workorder(odoo.url)

    assert asyncio.run(go())["wo"] == 2.0


def test_the_tally_starts_from_what_odoo_already_shows(odoo, tmp_path):
    async def go():
        client = OdooClient(odoo.url, "sandbox", "admin", "secret-key")
        (wo,) = await client.execute_kw("mrp.workorder", "search", [[]])
        await client.execute_kw("mrp.workorder", "write", [[wo], {"qty_producing": 100}])
        await client.close()
        store = Store(tmp_path / "store", sinks=["odoo"])
        store.append([_event(5, 5)])
        sink = OdooSink(_cfg(odoo.url), store)
        await _drain(sink, store)
        await sink.client.close()
        return await _workorder(odoo.url)

    assert asyncio.run(go())["wo"] == 105.0


def test_an_unmapped_work_center_goes_to_the_dead_letters_and_delivery_goes_on(odoo, tmp_path):
    store = Store(tmp_path / "store", sinks=["odoo"])
    store.append([_event(1, 1, work_center="NOPE-9"), _event(3, 3)])

    async def go():
        sink = OdooSink(_cfg(odoo.url), store)
        await _drain(sink, store)
        await sink.client.close()
        return sink.stats, await _workorder(odoo.url)

    stats, wo = asyncio.run(go())
    (letter,) = store.dead_letters("odoo")
    assert "no work center with code 'NOPE-9'" in letter["error"]
    assert stats.dead_lettered == 1 and wo["wo"] == 3.0 and store.backlog("odoo") == 0


def test_a_wrong_api_key_pauses_instead_of_dead_lettering(odoo, tmp_path):
    store = Store(tmp_path / "store", sinks=["odoo"])
    store.append([_event(1, 1)])

    async def go():
        sink = OdooSink(_cfg(odoo.url, key="revoked"), store)
        try:
            with pytest.raises(AuthDeliveryError):
                await sink.deliver(store.read("odoo"))
        finally:
            await sink.client.close()

    asyncio.run(go())
    assert store.backlog("odoo") == 1 and store.dead_letters() == []


def test_an_unreachable_odoo_is_a_transient_error(tmp_path):
    async def go():
        client = OdooClient(f"http://127.0.0.1:{free_port()}", "sandbox", "admin", "k", timeout=2)
        try:
            with pytest.raises(TransientDeliveryError):
                await client.version()
        finally:
            await client.close()

    asyncio.run(go())


def test_sink_worker_delivers_and_stops_when_asked(odoo, tmp_path):
    store = Store(tmp_path / "store", sinks=["odoo"])

    async def go():
        stop = asyncio.Event()
        sink = OdooSink(_cfg(odoo.url), store)
        task = asyncio.create_task(sink.run(stop))
        store.append([_event(7, 7)])
        sink.wake.set()
        for _ in range(100):
            if store.backlog("odoo") == 0:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)
        return await _workorder(odoo.url)

    assert asyncio.run(go())["wo"] == 7.0
