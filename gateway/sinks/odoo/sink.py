"""The Odoo sink worker: reads its cursor, delivers in order, acknowledges on success.

It owns the delivery loop for one Odoo destination. A batch of stored events is
handed, kind by kind, to the poster of that kind (production, scrap, downtime,
maintenance, consumption, quality, shift summary reconciliation, work order
start), which batches its calls where Odoo accepts lists; the cursor, the
posters' state, the journal receipts and any dead letters are then committed in
one store transaction. Calls are paced by a token bucket and a cap on calls in
flight.
Transient failures retry the same batch with capped, jittered backoff; an
authentication or rights failure pauses the sink (slow retries, an alarm in the
log); a permanent failure sends only the events concerned to the dead letters
with Odoo's own message, and delivery goes on. An event whose work center has
no open work order yet is held (see `pending`): the batch is acknowledged up to
it and retried with backoff until the order appears or `pending_timeout` passes.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Mapping

from drivers.base import Backoff
from gateway.config import OdooSinkConfig
from gateway.errors import AuthDeliveryError, DeliveryError
from gateway.sinks.common import SinkStats, wait_any
from gateway.sinks.odoo.batch import Outcome
from gateway.sinks.odoo.protocol import LazyClient
from gateway.sinks.odoo.consumption import ConsumptionPoster
from gateway.sinks.odoo.downtime import DowntimePoster
from gateway.sinks.odoo.maintenance import MaintenancePoster
from gateway.sinks.odoo.masterdata import MasterData
from gateway.sinks.odoo.pending import Pending, PendingContext
from gateway.sinks.odoo.production import OrderFinisher, ProductionPoster
from gateway.sinks.odoo.rate import PacedClient
from gateway.sinks.odoo.reconcile import SummaryPoster
from gateway.sinks.odoo.quality import QualityPoster
from gateway.sinks.odoo.scrap import ScrapPoster
from gateway.sinks.odoo.workorder import WorkorderFinishPoster, WorkorderStartPoster
from store.queue import Store, Stored

log = logging.getLogger("linebridge.sinks.odoo")


class OdooSink:
    """One Odoo destination fed from its own cursor in the store."""

    def __init__(self, cfg: OdooSinkConfig, store: Store, wake: asyncio.Event | None = None,
                 client: Any | None = None, clock: Callable[[], float] = time.time,
                 machines: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self.cfg = cfg
        self.name = cfg.name
        #: the machine mapping as configured now (a replayed dead letter is delivered with it)
        self.machines = machines or (lambda: {})
        self.store = store
        self.wake = wake or asyncio.Event()
        self.raw_client = client or LazyClient(cfg.url, cfg.database, cfg.login, cfg.api_key, cfg.timeout,
                                               cfg.protocol)
        self.client = PacedClient(self.raw_client, cfg.rate, cfg.max_in_flight)
        self.md = MasterData(self.client)
        self.pending = Pending(store, self.name, self.md, cfg.pending_timeout, clock)
        self.production = ProductionPoster(self.client, self.md, store, self.name, cfg.auto_finish)
        self.finisher = OrderFinisher(self.production)
        posters = [self.production,
                   ScrapPoster(self.client, self.md, self.name, cfg.scrap_location, cfg.scrap_mode == "do_scrap"),
                   DowntimePoster(self.client, self.md, self.name, cfg.loss, cfg.alarm_codes),
                   MaintenancePoster(self.client, self.md, self.name, cfg.alarm_codes),
                   ConsumptionPoster(self.client, self.md, store, self.name),
                   QualityPoster(self.client, self.md, self.name, cfg.quality_test),
                   SummaryPoster(self.production),
                   WorkorderStartPoster(self.client, self.md, self.name),
                   WorkorderFinishPoster(self.client, self.md, self.name)]
        self.posters = {kind: p for p in posters for kind in p.kinds}
        self.stats = SinkStats()
        self.stats.extra["call_latency"] = self.client.latency

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; the batch in flight is finished first."""
        backoff = Backoff(initial=0.5, cap=self.cfg.retry_cap)
        try:
            while not stop.is_set():
                batch = await asyncio.to_thread(self.store.read, self.name, self.cfg.batch_size)
                if not batch and not self.production.to_finish:
                    self.stats.state = "idle"
                    await wait_any(self.wake, stop, timeout=1.0)
                    self.wake.clear()
                    continue
                try:
                    if batch:
                        await self.deliver(batch)
                    else:  # nothing new, but an order still waits to be finished
                        await self.finisher.finish_due()
                    backoff.reset()
                    self.stats.state = "running"
                except DeliveryError as exc:
                    self.stats.retries += 1
                    self.stats.last_error = str(exc)
                    delay = backoff.next_delay()
                    paused = isinstance(exc, AuthDeliveryError)
                    self.stats.state = "paused" if paused else "pending" if isinstance(exc, PendingContext) \
                        else "retrying"
                    self.md.forget()
                    if paused:
                        self.raw_client.uid = None
                    if isinstance(exc, PendingContext):
                        await wait_any(stop, timeout=delay)  # `deliver` logged event=delivery_pending
                        continue
                    log.warning("event=%s sink=%s first_seq=%d events=%d retry_in=%.1fs error=%r",
                                "alarm_sink_paused" if paused else "delivery_retry", self.name,
                                batch[0].seq if batch else 0, len(batch), delay, str(exc))
                    await wait_any(stop, timeout=delay)
        finally:
            await self.raw_client.close()
            self.stats.state = "stopped"

    def _remap(self, stored: Stored) -> Stored:
        """A replayed event with its machine's mapping as configured now.

        The mapping is copied into the event at intake; when that mapping was
        wrong (an unknown work center, an unmapped machine), the dead letter is
        fixed by correcting the mapping and replaying it, so a replay looks the
        mapping up again. The stored event and its signature stay as they were.
        """
        ctx = stored.event.get("context") or {}
        mapping = self.machines().get(ctx.get("machine") or "")
        if mapping is None:
            return stored
        new = dict(ctx)
        for key in ("work_center", "equipment", "product"):
            value = getattr(mapping, key, None)
            if value:
                new[key] = value
        if new == ctx:
            return stored
        log.info("event=replay_remapped sink=%s seq=%d event_id=%s machine=%s work_center=%s->%s", self.name,
                 stored.seq, stored.event["id"], ctx.get("machine"), ctx.get("work_center"),
                 new.get("work_center"))
        return Stored(stored.seq, dict(stored.event, context=new), stored.cls)

    async def deliver(self, batch: list[Stored]) -> None:
        """Deliver one batch; returns after the store acknowledged it (or raises to retry).

        Events are handed to the poster of their kind in seq order; a transient
        or pausing error anywhere aborts the pass before anything is
        acknowledged, and the next pass repeats it (every poster is idempotent).
        """
        batch = [self._remap(s) if s.cls == "replay" else s for s in batch]
        triage = await self.pending.triage(batch)
        out = Outcome()
        for stored, reason in triage.expired:
            out.fail(stored, reason)
        expired = {id(s) for s, _ in triage.expired}
        by_kind: dict[str, list[Stored]] = {}
        for stored in triage.done:
            if id(stored) in expired:
                continue
            kind = stored.event["kind"]
            if kind not in self.posters:
                out.fail(stored, f"event kind {kind!r} has no Odoo mapping in this version")
                continue
            by_kind.setdefault(kind, []).append(stored)
        done_posters = set()
        for kind in by_kind:
            poster = self.posters[kind]
            if id(poster) in done_posters:
                continue
            done_posters.add(id(poster))
            items = [s for k in poster.kinds for s in by_kind.get(k, [])]
            items.sort(key=lambda s: s.seq)
            await poster.post(items, out)
        out.state[self.pending.key] = triage.state
        await asyncio.to_thread(self.store.ack, self.name, triage.done, out.state, out.dead, out.receipts)
        self.stats.delivered += len(triage.done) - len(out.dead)
        self.stats.dead_lettered += len(out.dead)
        self.stats.last_delivery = time.time()
        for stored, error in out.dead:
            log.error("event=dead_letter sink=%s seq=%d event_id=%s kind=%s error=%r", self.name,
                      stored.seq, stored.event["id"], stored.event["kind"], error)
        if self.production.to_finish:
            await self.finisher.finish_due()  # only now: the counts that justify it are acknowledged
        if triage.held:
            first = triage.held[0]
            centers = sorted({(s.event.get("context") or {}).get("work_center") for s in triage.held})
            log.warning("event=delivery_pending sink=%s seq=%d event_id=%s kind=%s held=%d work_centers=%s "
                        "reason=no_open_work_order timeout=%gs", self.name, first.seq, first.event["id"],
                        first.event["kind"], len(triage.held), ",".join(centers), self.cfg.pending_timeout)
            raise PendingContext(f"{len(triage.held)} event(s) wait for an open work order on "
                                 f"{', '.join(repr(c) for c in centers)}")
