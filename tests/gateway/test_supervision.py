"""Every long-lived task of a running gateway is supervised: the MQTT sink, its link, the heartbeat, a device
and the store's committer each die once (the way the 1,025th retry used to die of OverflowError) and the
gateway goes on: the death is logged with its traceback, counted in the status and the heartbeat, and the
task is restarted. Real peers: a mosquitto broker per test."""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from gateway import config as config_mod
from gateway.supervisor import Supervisor
from tests.drivers.mqtt.broker import Subscriber, publish
from tests.gateway.test_mqtt_sink import make_event, until

STATUS = "linebridge/line-3/gw-sv/status"
OVERFLOW = OverflowError(34, "Numerical result out of range")


def _config(port: int, device: bool = False) -> config_mod.Config:
    text = f"""
[gateway]
id = "gw-sv"
site = "line-3"

[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1:{port}"
retry_cap = 1

[heartbeat]
sink = "up"
interval = 0.3
"""
    if device:
        text += f"""
[devices.press]
type = "mqtt"
host = "127.0.0.1"
port = {port}
client_id = "gw-sv-press"
machine = "PRESS-1"

[devices.press.topics.state]
topic = "plant/press/state"
format = "json"

[devices.press.topics.state.fields]
parts = {{ path = "parts", type = "int" }}

[rules.press_parts]
type = "counter"
device = "press"
tag = "parts"
initial = "zero"
"""
    return config_mod.parse(text, source="test.toml")


def fail_once(obj: Any, name: str, exc: BaseException) -> list[int]:
    """Make `obj.name` raise `exc` on its first call (a fault injected into the real object)."""
    original = getattr(obj, name)
    calls: list[int] = []

    if asyncio.iscoroutinefunction(original):
        async def broken(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) == 1:
                raise exc
            return await original(*args, **kwargs)
    else:
        def broken(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            calls.append(1)
            if len(calls) == 1:
                raise exc
            return original(*args, **kwargs)
    setattr(obj, name, broken)
    return calls


def _fast(sup: Supervisor) -> None:
    sup.tasks.initial, sup.tasks.cap = 0.05, 0.2  # restart within a fraction of a second


def test_the_sink_its_link_and_the_heartbeat_die_and_are_restarted_and_delivery_goes_on(broker, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="linebridge.tasks")
    cfg = _config(broker.port)

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        sup = Supervisor(cfg, tmp_path / "state")
        _fast(sup)
        assert sup.heartbeat is not None
        fail_once(sup.sinks["up"], "deliver", OVERFLOW)
        fail_once(sup.links["up"], "_connect", OVERFLOW)
        fail_once(sup.heartbeat, "snapshot", RuntimeError("the probe failed"))
        sup.store.append([sup.key.sign(make_event(i)) for i in range(4)])
        runner = asyncio.create_task(sup.run())
        with Subscriber(broker.port, "linebridge/line-3/gw-sv/#") as sub:
            await until(lambda: sup.store.backlog("up") == 0, 15, "the backlog to drain")

            def restarted_status() -> dict[str, Any] | None:
                for topic, payload, _, _ in reversed(sub.messages):
                    if topic == STATUS:
                        body = json.loads(payload)
                        if body.get("tasks", {}).get("heartbeat", {}).get("restarts") == 1:
                            return body
                return None

            status = await until(restarted_status, 10, "a status that counts the heartbeat's restart")
            events = [json.loads(p) for t, p, _, _ in sub.messages if "/events/" in t]
        local = sup.status()
        sup.stop()
        await asyncio.wait_for(runner, 15)
        assert sorted({e["id"] for e in events}) == sorted(make_event(i)["id"] for i in range(4))
        return status, local

    status, local = asyncio.run(go())
    for name in ("sink:up", "link:up", "heartbeat"):
        assert local["tasks"][name]["restarts"] == 1, (name, local["tasks"])
        assert local["tasks"][name]["state"] == "running"
        assert status["tasks"][name]["restarts"] == 1
    assert local["tasks"]["store:committer"]["restarts"] == 0 and local["healthy"] is True
    assert local["tasks"]["sink:up"]["last_error"] == "OverflowError: (34, 'Numerical result out of range')"
    deaths = {r.getMessage().split()[1]: r for r in caplog.records if "event=task_died" in r.getMessage()}
    assert set(deaths) == {"task=sink:up", "task=link:up", "task=heartbeat"}
    assert all(r.exc_info is not None and r.levelname == "ERROR" for r in deaths.values())


def test_a_device_whose_connection_task_dies_is_restarted_and_reads_again(broker, tmp_path, caplog, monkeypatch):
    import drivers.mqtt.driver as mqtt_driver
    cfg = _config(broker.port, device=True)
    fail_once(mqtt_driver, "Link", OVERFLOW)  # the driver's own connection task dies at its first step

    async def go() -> dict[str, Any]:
        sup = Supervisor(cfg, tmp_path / "state")
        _fast(sup)
        runner = asyncio.create_task(sup.run())
        try:
            await until(lambda: sup.drivers["press"].health.connected, 15, "the device to connect again")
            n = 0

            def stored() -> bool:
                nonlocal n
                n += 1
                publish(broker.port, "plant/press/state", json.dumps({"parts": n * 3}))
                return sup.intake.events > 0

            await until(stored, 15, "a part event from the restarted device")
            return sup.status()
        finally:
            sup.stop()
            await asyncio.wait_for(runner, 15)

    status = asyncio.run(go())
    assert status["tasks"]["device:press"]["restarts"] == 1
    assert "the connection task died" in status["tasks"]["device:press"]["last_error"]
    assert any("event=task_died task=device:press" in r.getMessage() for r in caplog.records)


def test_a_committer_that_dies_fails_its_group_and_the_restarted_writer_stores_what_follows(tmp_path, caplog):
    from gateway.tasks import Tasks
    from store.committer import GroupCommitter
    from store.queue import Store

    store = Store(tmp_path / "store", sinks={"odoo": {"business"}})
    committer = GroupCommitter(store)
    fail_once(committer, "_commit", SystemError("the writer's bug"))  # not the store's refusal: the writer dies

    async def go() -> tuple[list[Any], dict[str, Any]]:
        tasks = Tasks(initial=0.01, cap=0.05)
        tasks.start("store:committer", committer.run)
        outcomes: list[Any] = []
        for i in range(3):
            try:
                outcomes.append(await asyncio.wait_for(committer.append([make_event(i)]), 5))
            except SystemError as exc:
                outcomes.append(exc)
        status = tasks.status()
        await tasks.stop_all(5)
        return outcomes, status

    try:
        outcomes, status = asyncio.run(go())
        assert isinstance(outcomes[0], SystemError)  # told, never left waiting: the pipeline holds and retries
        assert not isinstance(outcomes[1], Exception) and not isinstance(outcomes[2], Exception)
        assert status["store:committer"]["restarts"] == 1
        assert store.backlog("odoo") == 2
    finally:
        store.close()
