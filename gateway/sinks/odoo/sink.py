"""The Odoo sink worker: reads its cursor, delivers in order, acknowledges on success.

It owns the delivery loop for one Odoo destination. A batch of stored events is
grouped by work order; each group becomes one absolute write; the cursor, the
new tallies and any dead letters are then committed in one store transaction.
Transient failures retry the same batch with capped, jittered backoff; an
authentication or rights failure pauses the sink (slow retries, an alarm in the
log); a permanent failure sends only the events concerned to the dead letters
with Odoo's own message, and delivery goes on.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from drivers.base import Backoff
from gateway.config import OdooSinkConfig
from gateway.errors import AuthDeliveryError, DeliveryError, PermanentDeliveryError
from gateway.sinks.odoo.client import OdooClient
from gateway.sinks.odoo.production import ProductionPoster, WorkOrder, decode_tally, encode_tally
from store.queue import Store, Stored

log = logging.getLogger("linebridge.sinks.odoo")


@dataclass
class SinkStats:
    delivered: int = 0
    dead_lettered: int = 0
    retries: int = 0
    state: str = "starting"
    last_error: str | None = None
    last_delivery: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "extra"} | self.extra


class OdooSink:
    """One Odoo destination fed from its own cursor in the store."""

    def __init__(self, cfg: OdooSinkConfig, store: Store, wake: asyncio.Event | None = None,
                 client: OdooClient | None = None) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.store = store
        self.wake = wake or asyncio.Event()
        self.client = client or OdooClient(cfg.url, cfg.database, cfg.login, cfg.api_key, cfg.timeout)
        self.production = ProductionPoster(self.client, self.name)
        self.stats = SinkStats()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; the batch in flight is finished first."""
        backoff = Backoff(initial=0.5, cap=self.cfg.retry_cap)
        try:
            while not stop.is_set():
                batch = await asyncio.to_thread(self.store.read, self.name, self.cfg.batch_size)
                if not batch:
                    self.stats.state = "idle"
                    await _wait_any(self.wake, stop, timeout=1.0)
                    self.wake.clear()
                    continue
                try:
                    await self.deliver(batch)
                    backoff.reset()
                    self.stats.state = "running"
                except DeliveryError as exc:
                    self.stats.retries += 1
                    self.stats.last_error = str(exc)
                    delay = backoff.next_delay()
                    paused = isinstance(exc, AuthDeliveryError)
                    self.stats.state = "paused" if paused else "retrying"
                    self.production.forget_orders()
                    if paused:
                        self.client.uid = None
                    log.warning("event=%s sink=%s first_seq=%d events=%d retry_in=%.1fs error=%r",
                                "alarm_sink_paused" if paused else "delivery_retry", self.name,
                                batch[0].seq, len(batch), delay, str(exc))
                    await _wait_any(stop, timeout=delay)
        finally:
            await self.client.close()
            self.stats.state = "stopped"

    async def deliver(self, batch: list[Stored]) -> None:
        """Deliver one batch; returns after the store acknowledged it (or raises to retry)."""
        dead: list[tuple[Stored, str]] = []
        receipts: dict[str, str] = {}
        groups: dict[int, tuple[WorkOrder, list[Stored]]] = {}
        for stored in batch:
            ev = stored.event
            try:
                if ev["kind"] != "production":
                    raise PermanentDeliveryError(
                        f"event kind {ev['kind']!r} has no Odoo mapping in this version")
                code = (ev.get("context") or {}).get("work_center")
                if not code:
                    raise PermanentDeliveryError(
                        f"machine {ev.get('context', {}).get('machine')!r} is not mapped to a work center")
                wo = await self.production.open_workorder(code)
                groups.setdefault(wo.id, (wo, []))[1].append(stored)
            except PermanentDeliveryError as exc:
                dead.append((stored, str(exc)))

        tallies: dict[str, bytes] = {}
        for wo_id, (wo, items) in groups.items():
            key = self.production.tally_key(wo_id)
            base = decode_tally(await asyncio.to_thread(self.store.get_state, key))
            if base is None:
                # first contact with this order: start from Odoo's figure, stored before any write
                base = await self.production.odoo_qty(wo_id)
                await asyncio.to_thread(self.store.put_state, key, encode_tally(base))
            qty = base + sum(float(s.event["data"]["quantity"]) for s in items)
            try:
                await self.production.write_qty(wo, qty, [s.event["id"] for s in items])
            except PermanentDeliveryError as exc:
                dead.extend((s, str(exc)) for s in items)
                continue
            tallies[key] = encode_tally(qty)
            receipts.update((s.event["id"], f"mrp.workorder,{wo.id}") for s in items)

        await asyncio.to_thread(self.store.ack, self.name, batch, tallies, dead, receipts)
        self.stats.delivered += len(batch) - len(dead)
        self.stats.dead_lettered += len(dead)
        self.stats.last_delivery = time.time()
        for stored, error in dead:
            log.error("event=dead_letter sink=%s seq=%d event_id=%s kind=%s error=%r", self.name,
                      stored.seq, stored.event["id"], stored.event["kind"], error)


async def _wait_any(*events: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
