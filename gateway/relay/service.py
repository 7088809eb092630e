"""The running relay: broker -> judge -> durable store -> broker ack; store -> Odoo sink.

It owns the relay process's tasks: the intake loop takes the messages the
subscriber hands over, in batches, judges them (`intake.Judge`, in a worker
thread: signature checks are CPU), appends the accepted envelopes to the
relay's own LMDB store through the group committer (the store's intake
dedupe drops an event id it already holds), writes the refused ones to the
quarantine, and only then acknowledges every message of the batch to the
broker. The Odoo sink (the gateway's own, unchanged) delivers from the store
with its idempotent external ids, lanes, error classes and dead letters. A
store that refuses (full) is retried with capped, jittered backoff while
nothing is acknowledged. A status file (`<state>/status.json`) is rewritten
every few seconds with the counts. It does not own the checks, the
connection, or posting.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from drivers.base import Backoff
from gateway.files import atomic_write
from gateway.relay.config import RelayConfig
from gateway.relay.intake import Judge, Verdict
from gateway.relay.quarantine import Quarantine
from gateway.relay.registry import Registry, RegistryError
from gateway.relay.subscriber import Message, Subscriber
from gateway.sinks.odoo import OdooSink
from store.committer import GroupCommitter
from store.queue import Store, StoreFull

log = logging.getLogger("linebridge.relay")

STATUS_EVERY = 2.0
SINK = "odoo"


@dataclass
class RelayStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    last_event: dict[str, float] = field(default_factory=dict)   # gateway -> when its last event was stored

    def as_dict(self) -> dict[str, Any]:
        return {"received": self.received, "stored": self.stored, "duplicates": self.duplicates,
                "quarantined": self.quarantined, "last_event": dict(self.last_event)}


class Relay:
    def __init__(self, cfg: RelayConfig) -> None:
        self.cfg = cfg
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.registry = Registry(cfg.registry_path)
        self.judge = Judge(self.registry, cfg.max_age_days * 86400, cfg.max_skew_s)
        self.quarantine = Quarantine(cfg.quarantine_path)
        self.store = Store(cfg.store_path, [SINK])
        self.committer = GroupCommitter(self.store)
        self.wake = asyncio.Event()
        self.sink = OdooSink(cfg.odoo, self.store, self.wake)
        self.stats = RelayStats()
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.subscriber: Subscriber | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; the batch being stored is finished and acknowledged first."""
        self.subscriber = Subscriber(self.cfg.broker, self.queue, asyncio.get_running_loop(),
                                     receive_maximum=2 * self.cfg.batch_size)
        log.info("event=relay_started relay=%s filters=%s gateways=%d state_dir=%s", self.cfg.id,
                 ",".join(self.cfg.broker.filters()), len(self.registry.by_gateway), self.cfg.state_dir)
        self.subscriber.start()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.sink.run(stop), name="relay-odoo-sink")
                tg.create_task(self._status(stop), name="relay-status")
                await self._intake(stop)
        finally:
            self.subscriber.stop()
            await self.committer.close()
            self._write_status()
            self.store.close()
            log.info("event=relay_stopped relay=%s", self.cfg.id)

    async def _intake(self, stop: asyncio.Event) -> None:
        """Two stages: a batch is judged (CPU) while the one before it is written (a synced commit)."""
        judged: asyncio.Queue[tuple[list[Message], list[Verdict]] | None] = asyncio.Queue(maxsize=2)

        async def writer() -> None:
            while (item := await judged.get()) is not None:
                await self._store(*item, stop)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(writer(), name="relay-intake-writer")
            try:
                await self._judge_batches(judged, stop)
            finally:
                await judged.put(None)    # what was judged is written and acknowledged first

    async def _judge_batches(self, judged: "asyncio.Queue[Any]", stop: asyncio.Event) -> None:
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                getter = asyncio.ensure_future(self.queue.get())
                await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                batch = [getter.result()]
                while len(batch) < self.cfg.batch_size and not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                await judged.put((batch, await self.judge_batch(batch)))
        finally:
            stopper.cancel()

    async def judge_batch(self, batch: list[Message]) -> list[Verdict]:
        try:
            if self.registry.reload():
                log.info("event=relay_registry_loaded gateways=%d", len(self.registry.by_gateway))
        except RegistryError as exc:   # an edit in progress or a broken file: judge with what was loaded
            log.error("event=relay_registry_unreadable error=%r gateways_kept=%d", str(exc),
                      len(self.registry.by_gateway))
        return await asyncio.to_thread(lambda: [self.judge.judge(m.topic, m.payload) for m in batch])

    async def take(self, batch: list[Message], stop: asyncio.Event) -> None:
        """Judge, store or quarantine durably, then acknowledge `batch` to the broker."""
        await self._store(batch, await self.judge_batch(batch), stop)

    async def _store(self, batch: list[Message], verdicts: list[Verdict], stop: asyncio.Event) -> None:
        good = [v.envelope for v in verdicts if v.envelope is not None]
        bad = [(m.topic, m.payload, v.reason) for m, v in zip(batch, verdicts) if v.reason is not None]
        backoff = Backoff(initial=0.5, cap=30.0)
        while True:
            try:
                if bad:
                    await asyncio.to_thread(self.quarantine.add, bad)
                    bad = []
                result = await self.committer.append(good) if good else None
                break
            except (StoreFull, OSError) as exc:
                if stop.is_set():
                    return                   # unacknowledged: the broker sends them again
                delay = backoff.next_delay()
                log.error("event=relay_store_refused error=%r retry_in=%.1fs messages=%d", str(exc), delay,
                          len(batch))
                await asyncio.sleep(delay)
        assert self.subscriber is not None
        for message in batch:
            self.subscriber.ack(message)
        now = time.time()
        self.stats.received += len(batch)
        for m, v in zip(batch, verdicts):
            if v.reason is not None:
                self.stats.quarantined += 1
                log.warning("event=quarantined topic=%s reason=%r", m.topic, v.reason)
            elif v.envelope is not None:
                self.stats.last_event[v.envelope["gateway"]] = now
        if result is not None:
            self.stats.stored += len(result.seqs)
            self.stats.duplicates += result.duplicates
            if result.seqs:
                self.wake.set()
            log.debug("event=relay_stored stored=%d duplicates=%d", len(result.seqs), result.duplicates)

    async def _status(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._write_status()
            try:
                await asyncio.wait_for(stop.wait(), STATUS_EVERY)
            except asyncio.TimeoutError:
                pass

    def _write_status(self) -> None:
        sub = self.subscriber
        body = {"relay": self.cfg.id, "at": time.time(), **self.stats.as_dict(),
                "connected": bool(sub and sub.connected.is_set()), "connects": sub.connects if sub else 0,
                "sink": {"state": self.sink.stats.state, "delivered": self.sink.stats.delivered,
                         "last_error": self.sink.stats.last_error}}
        atomic_write(self.cfg.state_dir / "status.json", json.dumps(body, indent=1) + "\n", mode=0o644)
