"""Live configuration apply: only what changed restarts, and no queued event is lost.

Real peers on ephemeral loopback ports: the sandbox plant (pymodbus's own
server), reached by each device through its own counting TCP relay so a test
can tell whether a device reconnected; the Odoo sandbox; a mosquitto broker for
the heartbeat and the MQTT sinks. The gateway runs in the test's loop and
`apply` is called from another thread, the way the web UI calls it.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from gateway import config as config_mod
from gateway import topology
from gateway.sandbox.odoo import OdooSandbox
from gateway.sandbox.plant import Plant, run_plant
from gateway.sinks.odoo import OdooClient
from gateway.supervisor import Supervisor
from tests.drivers.mqtt.broker import Subscriber
from tests.gateway.test_mqtt_sink import until
from tests.gateway.test_mqtt_sink import make_event
from tests.helpers import free_port

KEY = "secret-key"


# -- peers ----------------------------------------------------------------------------------

class CountingRelay:
    """A TCP relay to the plant: counts the connections it accepted and those still open."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.accepted = 0
        self.open = 0
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
            self._writers.add(up_writer)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except OSError:
            writer.close()
        finally:
            self.open -= 1

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        await self._server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.fixture()
def odoo(tmp_path: Path):
    sb = OdooSandbox(host="127.0.0.1", port=0, data_path=tmp_path / "odoo.json", api_key=KEY)
    sb.start()
    yield sb
    sb.stop()


@contextlib.asynccontextmanager
async def plant_running(duration: float | None = None, part_rate: float = 4.0
                        ) -> AsyncIterator[tuple[Plant, list[CountingRelay]]]:
    """The plant (no alarms) and three relays to it, one per device."""
    plant = Plant(seed=11, duration=duration, part_rate=part_rate, mean_alarm_interval=1e9)
    ready, port = asyncio.Event(), free_port()
    task = asyncio.create_task(run_plant("127.0.0.1", port, ready=ready, plant=plant))
    relays: list[CountingRelay] = []
    try:
        await asyncio.wait_for(ready.wait(), 10)
        for _ in range(3):
            relay = CountingRelay(port)
            await relay.start()
            relays.append(relay)
        yield plant, relays
    finally:
        for relay in relays:
            await relay.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# -- configuration --------------------------------------------------------------------------

DEVICE = """
[devices.{name}]
type = "modbus_tcp"
host = "127.0.0.1"
port = {port}
unit_id = 1
poll_interval = {poll}
timeout = 2.0
{machine}
[devices.{name}.tags.{tag}]
function = "holding"
address = {address}
type = "{type}"
"""


def make_config(odoo_url: str, relays: list[Any], *, devices: tuple[str, ...] = ("cnc01", "cnc02"),
                polls: dict[str, float] | None = None, key: str = KEY, rate: float = 20.0,
                head: str = "") -> config_mod.Config:
    """cnc01 counts CNC-01's parts into Odoo; cnc02 and cnc03 only read the running bit."""
    text = f'[gateway]\nid = "gw-apply"\nsite = "test"\n{head}\n'
    for name in devices:
        i = int(name[-1]) - 1
        counter = name == "cnc01"
        text += DEVICE.format(name=name, port=relays[i].port, poll=(polls or {}).get(name, 0.1),
                              machine='machine = "CNC-01"' if counter else "",
                              tag="parts" if counter else "running", address=0 if counter else 5,
                              type="uint32" if counter else "uint16")
    if "cnc01" in devices:
        text += """
[rules.cnc01_parts]
type = "counter"
device = "cnc01"
tag = "parts"
kind = "production"
initial = "zero"
"""
    text += f"""
[machines.CNC-01]
work_center = "CNC-01"
equipment = "CNC-01"

[sinks.odoo]
type = "odoo"
url = "{odoo_url}"
database = "sandbox"
login = "admin"
api_key = "{key}"
timeout = 5.0
rate = {rate}
retry_cap = 2.0
"""
    return config_mod.parse(text, source="test.toml")


# -- helpers --------------------------------------------------------------------------------

async def until_async(condition: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await condition()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


async def odoo_qty(url: str) -> float:
    """CNC-01's work orders' qty_producing, as Odoo shows it."""
    client = OdooClient(url, "sandbox", "admin", KEY)
    try:
        (wc,) = await client.execute_kw("mrp.workcenter", "search", [[["code", "=", "CNC-01"]]])
        rows = await client.execute_kw("mrp.workorder", "search_read", [[["workcenter_id", "=", wc]]],
                                       {"fields": ["qty_producing"]})
        return sum(r["qty_producing"] for r in rows)
    finally:
        await client.close()


async def apply_from_thread(sup: Supervisor, cfg: config_mod.Config) -> dict[str, Any]:
    """The way the web UI applies: from a WSGI thread, onto the gateway's loop."""
    assert sup.loop is asyncio.get_running_loop()
    future = asyncio.run_coroutine_threadsafe(sup.apply(cfg), sup.loop)
    return await asyncio.to_thread(future.result, 60)


def delivered_ids(sup: Supervisor, sink: str = "odoo") -> list[str]:
    return [item[0] for entry in sup.store.journal_entries(1_000_000)
            if entry["op"] == "delivered" and entry["sink"] == sink for item in entry["items"]]


def queued_quantity(sup: Supervisor) -> int:
    return sum(s.event["data"]["quantity"] for s in sup.store.read("odoo", 100_000)
               if s.event["kind"] == "production")


@contextlib.asynccontextmanager
async def gateway(cfg: config_mod.Config, state: Path) -> AsyncIterator[Supervisor]:
    sup = Supervisor(cfg, state)
    runner = asyncio.create_task(sup.run())
    await asyncio.wait_for(sup.ready.wait(), 10)
    try:
        yield sup
    finally:
        sup.stop()
        await asyncio.wait_for(runner, 20)
    # stop() after any number of applies leaves no device, sink, link or heartbeat task behind
    left = [t.get_name() for t in asyncio.all_tasks() if not t.done()
            and t.get_name().split(":")[0] in ("device", "sink", "link", "heartbeat")]
    assert left == []


def run(coro: Awaitable[Any], timeout: float = 120.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


# -- tests ----------------------------------------------------------------------------------

def test_changing_one_devices_poll_interval_restarts_only_that_device(odoo, tmp_path):
    async def go() -> None:
        async with plant_running() as (plant, relays):
            before = make_config(odoo.url, relays)
            async with gateway(before, tmp_path / "state") as sup:
                await until(lambda: all(d.health.connected for d in sup.drivers.values()), 10, "both connected")
                cnc01, cnc02, sink = sup.drivers["cnc01"], sup.drivers["cnc02"], sup.sinks["odoo"]
                await until(lambda: cnc02.health.reads >= 3, 10, "cnc02 to read")

                result = await apply_from_thread(sup, make_config(odoo.url, relays, polls={"cnc01": 0.3}))

                assert result == {"restarted": {"devices": ["cnc01"], "sinks": [], "heartbeat": []},
                                  "started": {"devices": [], "sinks": [], "heartbeat": []},
                                  "stopped": {"devices": [], "sinks": [], "heartbeat": []},
                                  "unchanged": 2, "restart_required": []}
                assert sup.drivers["cnc02"] is cnc02 and sup.sinks["odoo"] is sink
                assert sup.drivers["cnc01"] is not cnc01
                assert sup.drivers["cnc01"].config.poll_interval == 0.3
                assert sup.config.devices["cnc01"].config.poll_interval == 0.3
                reads = cnc02.health.reads
                await until(lambda: sup.drivers["cnc01"].health.connected, 10, "the new cnc01 to connect")
                await until(lambda: relays[0].open == 1, 5, "the old cnc01 connection to close")
                await until(lambda: cnc02.health.reads >= reads + 5, 10, "cnc02 to go on reading")
                assert relays[0].accepted == 2          # cnc01: a new driver, a new connection
                assert relays[1].accepted == 1 and relays[1].open == 1   # cnc02: never reconnected
                assert cnc02.health.reconnects == 0 and cnc02.health.connected
                assert not cnc01.health.connected       # the old driver let go of its line
                assert set(sup.status()["devices"]) == {"cnc01", "cnc02"}

    run(go())


def test_devices_are_added_and_removed_live(odoo, tmp_path):
    async def go() -> None:
        async with plant_running() as (plant, relays):
            async with gateway(make_config(odoo.url, relays), tmp_path / "state") as sup:
                cnc01, cnc02 = sup.drivers["cnc01"], sup.drivers["cnc02"]
                await until(lambda: cnc02.health.connected, 10, "cnc02 to connect")

                added = await apply_from_thread(
                    sup, make_config(odoo.url, relays, devices=("cnc01", "cnc02", "cnc03")))
                assert added["started"]["devices"] == ["cnc03"] and added["unchanged"] == 3
                assert added["restarted"] == {"devices": [], "sinks": [], "heartbeat": []}
                await until(lambda: sup.status()["devices"]["cnc03"]["reads"] >= 2, 10, "cnc03 to read")
                assert relays[2].accepted == 1

                removed = await apply_from_thread(
                    sup, make_config(odoo.url, relays, devices=("cnc01", "cnc03")))
                assert removed["stopped"]["devices"] == ["cnc02"] and removed["unchanged"] == 3
                assert set(sup.status()["devices"]) == {"cnc01", "cnc03"}
                await until(lambda: relays[1].open == 0, 5, "cnc02's connection to close")
                reads = cnc02.health.reads
                await asyncio.sleep(0.5)
                assert cnc02.health.reads == reads    # no task polls it any more
                assert sup.drivers["cnc01"] is cnc01 and relays[0].accepted == 1

    run(go())


def test_two_applies_from_two_threads_run_one_after_the_other(odoo, tmp_path):
    async def go() -> None:
        async with plant_running() as (plant, relays):
            async with gateway(make_config(odoo.url, relays), tmp_path / "state") as sup:
                cnc02 = sup.drivers["cnc02"]
                await until(lambda: all(d.health.connected for d in sup.drivers.values()), 10, "both connected")
                first, second = await asyncio.gather(
                    apply_from_thread(sup, make_config(odoo.url, relays, polls={"cnc01": 0.3})),
                    apply_from_thread(sup, make_config(odoo.url, relays, polls={"cnc01": 0.2})))
                assert first["restarted"]["devices"] == second["restarted"]["devices"] == ["cnc01"]
                assert sup.drivers["cnc01"].config.poll_interval == 0.2 and sup.drivers["cnc02"] is cnc02
                await until(lambda: sup.drivers["cnc01"].health.connected, 10, "the last cnc01 to connect")
                await until(lambda: relays[0].open == 1, 5, "the earlier cnc01 connections to close")
                assert relays[1].accepted == 1 and cnc02.health.connected

    run(go())


def test_a_wrong_api_key_queues_events_and_the_right_one_delivers_them_exactly_once(odoo, tmp_path):
    async def go() -> None:
        async with plant_running(duration=3.0, part_rate=5.0) as (plant, relays):
            wrong = make_config(odoo.url, relays, key="revoked-key")
            async with gateway(wrong, tmp_path / "state") as sup:
                await until(lambda: sup.sinks["odoo"].stats.state == "paused", 15, "the sink to pause")
                await until(lambda: plant.final, 10, "the plant to finish")
                await until(lambda: queued_quantity(sup) == plant.parts, 10,
                            f"the plant's {plant.parts} parts to be queued")
                assert plant.parts > 0
                assert sup.store.dead_letters() == [] and sup.store.backlog("odoo") > 0
                assert await odoo_qty(odoo.url) == 0

                result = await apply_from_thread(sup, make_config(odoo.url, relays))
                assert result["restarted"] == {"devices": [], "sinks": ["odoo"], "heartbeat": []}
                assert result["unchanged"] == 2
                assert sup.sinks["odoo"].cfg.api_key == KEY

                await until_async(lambda: _equals(odoo_qty(odoo.url), plant.parts), 20,
                                  f"Odoo to show the plant's {plant.parts} parts")
                await until(lambda: sup.store.backlog("odoo") == 0, 10, "an empty backlog")
                await asyncio.sleep(1.0)
                assert await odoo_qty(odoo.url) == plant.parts
                ids = delivered_ids(sup)
                assert len(ids) == len(set(ids)) > 0
                assert sup.store.dead_letters() == []

    run(go())


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return (await value) == expected


def test_a_store_change_is_reported_as_restart_required_and_the_rest_is_applied(odoo, tmp_path):
    async def go() -> None:
        async with plant_running() as (plant, relays):
            before = make_config(odoo.url, relays)
            async with gateway(before, tmp_path / "state") as sup:
                cnc02, sink = sup.drivers["cnc02"], sup.sinks["odoo"]
                result = await apply_from_thread(sup, make_config(
                    odoo.url, relays, polls={"cnc01": 0.2}, head="[store]\nmap_size_mb = 32\n"))
                assert result["restarted"]["devices"] == ["cnc01"] and result["unchanged"] == 2
                (reason,) = result["restart_required"]
                assert reason.startswith("[store] map_size_mb changed") and "restart the gateway" in reason
                assert sup.config.store == before.store           # still the store that is open
                assert sup.config.devices["cnc01"].config.poll_interval == 0.2
                assert sup.drivers["cnc02"] is cnc02 and sup.sinks["odoo"] is sink

                same = await apply_from_thread(sup, make_config(
                    odoo.url, relays, polls={"cnc01": 0.2}, head="[store]\nmap_size_mb = 32\n"))
                assert same["unchanged"] == 3 and same["restart_required"] == result["restart_required"]

    run(go())


def test_no_part_is_lost_or_doubled_across_applies_while_the_counter_runs(odoo, tmp_path):
    async def go() -> None:
        async with plant_running(duration=5.0, part_rate=8.0) as (plant, relays):
            async with gateway(make_config(odoo.url, relays), tmp_path / "state") as sup:
                await until_async(lambda: _positive(odoo_qty(odoo.url)), 15, "the first parts in Odoo")
                changes = [(dict(polls={"cnc01": 0.15}), ["cnc01"], []),             # the device
                           (dict(polls={"cnc01": 0.15}, rate=25.0), [], ["odoo"]),   # the sink
                           (dict(polls={"cnc01": 0.1}, rate=30.0), ["cnc01"], ["odoo"])]  # both at once
                for change, devices, sinks in changes:
                    await asyncio.sleep(0.6)
                    result = await apply_from_thread(sup, make_config(odoo.url, relays, **change))
                    assert (result["restarted"]["devices"], result["restarted"]["sinks"]) == (devices, sinks)
                    assert not plant.final, "the plant stopped before the applies were done"
                await until(lambda: plant.final, 15, "the plant to finish")
                await until_async(lambda: _equals(odoo_qty(odoo.url), plant.parts), 20,
                                  f"Odoo to show the plant's {plant.parts} parts")
                await until(lambda: sup.store.backlog("odoo") == 0, 10, "an empty backlog")
                await asyncio.sleep(1.0)
                assert await odoo_qty(odoo.url) == plant.parts
                ids = delivered_ids(sup)
                assert len(ids) == len(set(ids))
                assert sup.store.dead_letters() == [] and sup.intake.refused == 0
                assert relays[0].accepted == 3 and relays[1].accepted == 1

    run(go())


async def _positive(value: Awaitable[Any]) -> bool:
    return (await value) > 0


def _mqtt_config(port: int, *, interval: float = 0.5, second: bool = False) -> config_mod.Config:
    text = f"""
[gateway]
id = "gw-apply"
site = "test"

[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1:{port}"
topic_prefix = "lb/up"

[heartbeat]
sink = "up"
interval = {interval}
"""
    if second:
        text += f"""
[sinks.second]
type = "mqtt"
url = "mqtt://127.0.0.1:{port}"
topic_prefix = "lb/second"
"""
    return config_mod.parse(text)


def test_heartbeat_and_mqtt_sinks_restart_with_their_link_and_are_added_and_removed_live(broker, tmp_path):
    async def go() -> None:
        async with gateway(_mqtt_config(broker.port), tmp_path / "state") as sup:
            with Subscriber(broker.port, "lb/#") as sub:
                sup.store.append([sup.key.sign(make_event(i)) for i in range(3)])
                sup.wake.set()
                await until(lambda: sup.store.backlog("up") == 0, 10, "up to drain")
                link = sup.links["up"]

                result = await apply_from_thread(sup, _mqtt_config(broker.port, interval=0.7))
                assert result["restarted"] == {"devices": [], "sinks": ["up"], "heartbeat": ["up"]}
                assert sup.links["up"] is not link and sup.heartbeat.cfg.interval == 0.7
                assert sup.heartbeat.link is sup.links["up"] and sup.links["up"].will is not None
                await until(lambda: sup.links["up"].connected.is_set(), 10, "the new link to connect")
                statuses = lambda: [json.loads(p) for t, p, _, _ in list(sub.messages) if t == "lb/up/status"]
                await until(lambda: statuses() and statuses()[-1].get("interval_s") == 0.7, 10,
                            "a status from the new heartbeat")

                added = await apply_from_thread(sup, _mqtt_config(broker.port, interval=0.7, second=True))
                assert added["started"]["sinks"] == ["second"] and added["unchanged"] == 1
                assert set(sup.store.sinks) == {"up", "second"}
                sup.store.append([sup.key.sign(make_event(i)) for i in range(3, 6)])
                sup.wake.set()
                await until(lambda: sup.store.backlog("up") == 0 == sup.store.backlog("second"), 10,
                            "both sinks to deliver")
                events = lambda prefix: {json.loads(p)["id"] for t, p, _, _ in list(sub.messages)
                                         if t.startswith(prefix + "/events/")}
                assert events("lb/up") >= events("lb/second") and len(events("lb/second")) >= 3

                removed = await apply_from_thread(sup, _mqtt_config(broker.port, interval=0.7))
                assert removed["stopped"]["sinks"] == ["second"] and set(sup.store.sinks) == {"up"}
                assert set(sup.status()["sinks"]) == {"up"}
                sup.store.append([sup.key.sign(make_event(i)) for i in range(6, 8)])
                sup.wake.set()
                await until(lambda: sup.store.backlog("up") == 0, 10, "up to deliver alone")
                assert sup.store.stored_count() == 0   # the removed sink holds nothing back

    run(go())


def test_the_plan_restarts_only_devices_whose_events_a_mapping_change_touches():
    ports = [SimpleNamespace(port=p) for p in (1001, 1002, 1003)]
    old = make_config("http://127.0.0.1:1", ports)
    new = dataclasses.replace(old, machines={"CNC-01": config_mod.MachineConfig("CNC-01", "CNC-02", "CNC-01")})
    plan = topology.plan(old, new)
    assert plan.devices.changed == {"cnc01": "machine_mapping"}   # cnc02 makes no events
    assert plan.devices.unchanged == ["cnc02"] and plan.sinks.unchanged == ["odoo"]
    assert not plan.heartbeat and plan.restart_required == [] and plan.config.machines == new.machines


def test_apply_refuses_before_the_gateway_runs(tmp_path):
    cfg = make_config("http://127.0.0.1:1", [SimpleNamespace(port=p) for p in (1001, 1002, 1003)])
    sup = Supervisor(cfg, tmp_path / "state")
    try:
        with pytest.raises(RuntimeError, match="not running"):
            asyncio.run(sup.apply(cfg))
    finally:
        sup.store.close()
