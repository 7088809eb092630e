"""The supervisor: builds the topology from a validated config, runs it, stops it cleanly.

It owns the tasks of the gateway process: one intake task per device (driver
-> rules -> sign -> store), one worker per sink, one supervised connection per
MQTT sink and the heartbeat. It loads (or, on the first start, makes) the
device key that signs every event. A device task that fails is logged and
restarted with backoff; it never stops another device or a sink. `stop()`
stops the drivers first, then lets each sink finish the batch it has in
flight, then the heartbeat publishes the offline status, then the MQTT
connections close cleanly, all within deadlines.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from drivers.base import Backoff, Driver
from gateway import __version__
from gateway.config import Config, MqttSinkConfig
from gateway.context import ContextStore
from gateway.heartbeat import Heartbeat
from gateway.pipeline import DevicePipeline, IntakeStats
from gateway.summary import ShiftTallies
from gateway.rules.build import build as build_rule
from gateway.signing import DeviceKey
from gateway.sinks.mqtt import MqttLink, MqttSink
from gateway.sinks.odoo import OdooSink
from store.committer import GroupCommitter
from store.queue import Quota, Store, StoreOptions

log = logging.getLogger("linebridge.supervisor")


class DriverState:
    """A driver's private slice of the store's state database (see drivers.base.StateStore)."""

    def __init__(self, store: Store, driver: str) -> None:
        self._store = store
        self._prefix = f"driver/{driver}/"

    def get(self, key: str) -> bytes | None:
        return self._store.get_state(self._prefix + key)

    def put(self, key: str, value: bytes) -> None:
        self._store.put_state(self._prefix + key, value)


def default_state_dir() -> Path:
    """`/var/lib/linebridge` for root, else `$XDG_STATE_HOME/linebridge` (~/.local/state)."""
    if os.geteuid() == 0:
        return Path("/var/lib/linebridge")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "linebridge"


class WakeAll:
    """What the pipelines set after an append: wakes every sink (each has its own event)."""

    def __init__(self) -> None:
        self.events: list[asyncio.Event] = []

    def set(self) -> None:
        for event in self.events:
            event.set()


class Supervisor:
    """Owns the store, the drivers, the pipelines and the sinks of one gateway."""

    def __init__(self, config: Config, state_dir: Path) -> None:
        self.config = config
        self.state_dir = Path(state_dir)
        sc = config.store
        options = StoreOptions(
            map_size=sc.map_size_mb * 2**20, max_map_size=sc.max_map_size_mb * 2**20,
            quotas={"business": Quota(sc.business_max_events, sc.business_max_mb * 2**20),
                    "telemetry": Quota(sc.telemetry_max_events, sc.telemetry_max_mb * 2**20)},
            dedupe_ttl=sc.dedupe_ttl_hours * 3600.0, journal_keep=sc.journal_keep)
        self.key = DeviceKey.load_or_create(self.state_dir)
        routes = {n: (c.classes if isinstance(c, MqttSinkConfig) else {"business"})
                  for n, c in config.sinks.items()}
        self.store = Store(self.state_dir / "store", sinks=routes, options=options)
        self.committer = GroupCommitter(self.store)
        self.wake = WakeAll()
        self.intake = IntakeStats()
        self.drivers: dict[str, Driver] = {}
        self.pipelines: dict[str, DevicePipeline] = {}
        machines = {spec.machine or name for name, spec in config.devices.items()}
        #: operator, lot and work order per machine, shared by every device of that machine
        self.context = ContextStore.load(self.store.get_state, sorted(machines))
        #: each machine's good parts and scrap in the running shift, shared the same way
        self.tallies = ShiftTallies(config.shifts) if config.shifts else None
        for name, spec in config.devices.items():
            driver = spec.driver(name, spec.config)
            driver.state = DriverState(self.store, name)
            if hasattr(driver, "pki_root"):  # OPC-UA: generated client certificates live with the state
                driver.pki_root = self.state_dir / "pki"
            rules = [build_rule(r, config.gateway.id, spec.machine or name)
                     for r in config.rules.values() if r.device == name]
            self.drivers[name] = driver
            self.pipelines[name] = DevicePipeline(config, driver, rules, self.committer, self.wake, self.intake,
                                                  signer=self.key, context=self.context, tallies=self.tallies)
        self.started = time.time()
        self.links: dict[str, MqttLink] = {}
        self.sinks: dict[str, OdooSink | MqttSink] = {}
        self.heartbeat: Heartbeat | None = None
        hb = config.heartbeat
        for name, cfg in config.sinks.items():
            if isinstance(cfg, MqttSinkConfig):
                link = self.links[name] = MqttLink(cfg)
                self.sinks[name] = MqttSink(cfg, self.store, asyncio.Event(), link)
                if hb is not None and hb.sink == name:
                    self.heartbeat = Heartbeat(hb, config.gateway, cfg.topic_prefix, link, self.key,
                                               self.store, self.status, self.state_dir)
                    link.will = self.heartbeat.will()
            else:
                self.sinks[name] = OdooSink(cfg, self.store, asyncio.Event())
        self.wake.events = [s.wake for s in self.sinks.values()]
        #: set once every driver, sink and link task has been started (sd_notify READY waits for it)
        self.ready = asyncio.Event()
        self._stop_intake = asyncio.Event()
        self._stop_sinks = asyncio.Event()
        self._stop_links = asyncio.Event()

    async def run(self) -> None:
        """Run until `stop()`; returns once everything has shut down."""
        log.info("event=started version=%s gateway=%s devices=%d sinks=%d state_dir=%s kid=%s", __version__,
                 self.config.gateway.id, len(self.drivers), len(self.sinks), self.state_dir, self.key.kid)
        link_tasks = [asyncio.create_task(link.run(self._stop_links), name=f"link:{n}")
                      for n, link in self.links.items()]
        sink_tasks = [asyncio.create_task(s.run(self._stop_sinks), name=f"sink:{n}")
                      for n, s in self.sinks.items()]
        if self.heartbeat is not None:
            sink_tasks.append(asyncio.create_task(self.heartbeat.run(self._stop_sinks), name="heartbeat"))
        device_tasks = [asyncio.create_task(self._run_device(n), name=f"device:{n}")
                        for n in self.pipelines]
        self.ready.set()
        await self._stop_intake.wait()
        for driver in self.drivers.values():
            await driver.stop()
        if device_tasks:
            await asyncio.wait(device_tasks, timeout=3.0)
        for t in device_tasks:
            t.cancel()
        self._stop_sinks.set()
        if sink_tasks:
            done, pending = await asyncio.wait(sink_tasks, timeout=6.0)
            for t in pending:
                t.cancel()
        await asyncio.gather(*device_tasks, *sink_tasks, return_exceptions=True)
        if self.heartbeat is not None:
            await self.heartbeat.publish_offline(timeout=2.0)
        self._stop_links.set()
        if link_tasks:
            done, pending = await asyncio.wait(link_tasks, timeout=3.0)
            for t in pending:
                t.cancel()
            await asyncio.gather(*link_tasks, return_exceptions=True)
        await self.committer.close()
        self.store.close()
        log.info("event=stopped gateway=%s", self.config.gateway.id)

    def stop(self) -> None:
        self._stop_intake.set()

    async def _run_device(self, name: str) -> None:
        backoff = Backoff(initial=1.0, cap=60.0)
        pipeline, driver = self.pipelines[name], self.drivers[name]
        while not self._stop_intake.is_set():
            try:
                await driver.start()
                await pipeline.run()
                if self._stop_intake.is_set():
                    return
                raise RuntimeError("sample stream ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a device's failure must not stop the others
                delay = backoff.next_delay()
                log.error("event=device_task_failed device=%s restart_in=%.1fs error=%r",
                          name, delay, str(exc), exc_info=exc)
                try:
                    await driver.stop()
                except Exception as stop_exc:
                    log.warning("event=device_stop_failed device=%s error=%r", name, str(stop_exc))
                try:
                    await asyncio.wait_for(self._stop_intake.wait(), timeout=delay)
                except asyncio.TimeoutError:
                    pass

    def status(self) -> dict[str, Any]:
        """A snapshot for progress lines, the demo summary and (later) the heartbeat."""
        return {
            "uptime": round(time.time() - self.started, 1),
            "read": self.intake.samples,
            "bad_samples": self.intake.bad_samples,
            "events": self.intake.events,
            "stored": self.intake.stored,
            "refused": self.intake.refused,
            "sinks": {n: dict(s.stats.as_dict(), backlog=self.store.backlog(n))
                      for n, s in self.sinks.items()},
            "devices": {n: d.health.as_dict() for n, d in self.drivers.items()},
        }
