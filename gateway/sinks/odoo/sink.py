"""The Odoo sink worker: reads its cursor, delivers in order, acknowledges on success.

It owns the delivery loop for one Odoo destination. A batch of stored events is
handed, kind by kind, to the poster of that kind (production, scrap, downtime,
maintenance, consumption, quality, shift summary reconciliation, work order
start), which batches its calls where Odoo accepts lists; the cursor, the
posters' state, the journal receipts and any dead letters are then committed in
one store transaction. Calls are paced by a token bucket and a cap on calls in
flight.
Transient failures retry the same batch with capped, jittered backoff; while it
waits, a cheap probe (Odoo's version, no database) every `probe_interval`
seconds (jittered) ends the wait as soon as Odoo answers again after an outage,
so delivery resumes within seconds of Odoo's return, not after the backoff. A
retry after a failure to connect first looks with a bare TCP connect
(`gateway.sinks.reach`): while nothing listens, that is the failed attempt, at
a fraction of a request's cost (a soak's outage reaches 10^6 of them). An
authentication or rights failure pauses the sink (slow retries, an alarm in the
log); a permanent failure sends only the events concerned to the dead letters
with Odoo's own message, and delivery goes on. An event whose work center has
no open work order yet is held in that work center's lane (see `pending`) while
the other work centers go on; the held lanes are retried with backoff until the
order appears or `pending_timeout` passes. Events, held ones too, are read through
the signature check (`gateway.sinks.screen`): a tampered one is dead-lettered,
never posted.

Near-real-time first: alarms (maintenance requests) of a batch are posted before
anything else in it, and within each run between two work order starts or
finishes, downtimes are posted before production; production counts are
written to Odoo by the production poster at most once per `count_interval` per
work order (a writer task of this sink flushes them), and before anything that
depends on them (see `production`).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import replace
from typing import Any, Callable, Mapping

from drivers.base import Backoff
from gateway.config import OdooSinkConfig
from gateway.credentials import SecretWatch, fingerprint
from gateway.errors import AuthDeliveryError, DeliveryError, UnreachableError
from gateway.signing import PublicKey
from gateway.sinks.common import TIMER_RESOLUTION, SinkStats, retry_pause, retry_wait, wait_any
from gateway.sinks.reach import direct_address, unreachable
from gateway.sinks.screen import Screen
from gateway.sinks.odoo.batch import Outcome
from gateway.sinks.odoo.protocol import LazyClient
from gateway.sinks.odoo.consumption import ConsumptionPoster
from gateway.sinks.odoo.downtime import DowntimePoster
from gateway.sinks.odoo.oee import OeePoster
from gateway.sinks.odoo.implausible import ImplausiblePoster
from gateway.sinks.odoo.maintenance import MaintenancePoster
from gateway.sinks.odoo.masterdata import MasterData
from gateway.sinks.odoo.pending import Pending
from gateway.sinks.odoo.production import OrderFinisher, ProductionPoster
from gateway.sinks.odoo.rate import PacedClient
from gateway.sinks.odoo.reconcile import SummaryPoster
from gateway.sinks.odoo.quality import QualityPoster
from gateway.sinks.odoo.scrap import ScrapPoster
from gateway.sinks.odoo.workorder import WorkorderFinishPoster, WorkorderStartPoster
from store.queue import Store, Stored

log = logging.getLogger("linebridge.sinks.odoo")
#: kinds that change which work order is open: posted at their place in the order of events
BARRIERS = frozenset({"workorder_start", "workorder_finish"})
#: kinds posted first in a batch, whatever comes before them: they depend on no order or count
FIRST = frozenset({"alarm", "maintenance_due"})
#: the order of posters within a run; kinds not listed come last
RANK = {"alarm": 0, "maintenance_due": 0, "downtime_start": 1, "downtime_end": 1, "production": 2}
#: kinds that depend on the count in Odoo: every count is written before them (a start or finish
#: ends the order the counts go to, a shift summary compares it, Odoo re-derives the component
#: moves a consumption writes from it); scrap and quality results do not
AFTER_COUNTS = frozenset({"workorder_start", "workorder_finish", "production_summary", "consumption"})


class OdooSink:
    """One Odoo destination fed from its own cursor in the store."""

    def __init__(self, cfg: OdooSinkConfig, store: Store, wake: asyncio.Event | None = None,
                 client: Any | None = None, clock: Callable[[], float] = time.time,
                 machines: Callable[[], Mapping[str, Any]] | None = None,
                 verify: PublicKey | None = None) -> None:
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
        self.pending = Pending(self.md, cfg.pending_timeout, clock)
        self.production = ProductionPoster(self.client, self.md, store, self.name, cfg.auto_finish,
                                           cfg.count_interval)
        self.finisher = OrderFinisher(self.production)
        posters = [self.production,
                   ScrapPoster(self.client, self.md, self.name, cfg.scrap_location, cfg.scrap_mode),
                   DowntimePoster(self.client, self.md, self.name, cfg.loss, cfg.alarm_codes),
                   MaintenancePoster(self.client, self.md, self.name, cfg.alarm_codes),
                   ConsumptionPoster(self.client, self.md, store, self.name),
                   QualityPoster(self.client, self.md, self.name, cfg.quality_test),
                   SummaryPoster(self.production),
                   WorkorderStartPoster(self.client, self.md, self.name, self.production),
                   WorkorderFinishPoster(self.client, self.md, self.name),
                   ImplausiblePoster(self.name), OeePoster(self.name)]
        self.posters = {kind: p for p in posters for kind in p.kinds}
        self.stats = SinkStats()
        #: set by a person's "Retry now": the retry wait ends at once
        self.retry_now = asyncio.Event()
        self.stats.extra["call_latency"] = self.client.latency
        #: the signature check before delivery (`verify`: the gateway's public key)
        self.screen = Screen(self.name, verify, self.stats)
        #: where the API key is kept, polled for a rotated one (`gateway.credentials`); None: never changes
        self.key_watch: SecretWatch | None = None
        #: told the new configuration after a rotation (the supervisor keeps its own in step)
        self.on_rotated: Callable[[OdooSinkConfig], None] | None = None
        self.stats.extra["key_fingerprint"] = fingerprint(cfg.api_key) if cfg.api_key else None

    def rotate_key(self, api_key: str, by: str = "watch") -> None:
        """Use `api_key` from the next call on: no restart, the batch in flight goes on (calls already
        sent end with the old key, which stays valid in Odoo until a person revokes it)."""
        old = self.cfg.api_key
        if api_key == old:
            return
        if hasattr(self.raw_client, "set_api_key"):
            self.raw_client.set_api_key(api_key)
        self.cfg = replace(self.cfg, api_key=api_key)
        if self.key_watch is not None:
            self.key_watch.current = api_key
        self.stats.extra["key_fingerprint"] = fingerprint(api_key)
        if self.on_rotated is not None:
            self.on_rotated(self.cfg)
        log.warning("event=credential_rotated sink=%s api_key=%s old=%s by=%s revoke=old", self.name,
                    fingerprint(api_key), fingerprint(old) if old else None, by)

    def _poll_key(self, force: bool = False) -> bool:
        """True when a new API key was found where it is kept (and is now in use)."""
        if self.key_watch is None:
            return False
        new = self.key_watch.poll(force)
        if new is None:
            return False
        self.rotate_key(new, by="file")
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; the batch in flight is finished first, the counts written last."""
        await asyncio.to_thread(self.production.load)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._writer(stop))
                await self._deliver_loop(stop)
        finally:
            await self.production.close(self.cfg.timeout)
            await self.raw_client.close()
            self.stats.state = "stopped"

    async def _writer(self, stop: asyncio.Event) -> None:
        """Writes each work order's count once its interval passed, beside the delivery loop."""
        tick = max(0.2, min(1.0, self.cfg.count_interval / 4))
        while not stop.is_set():
            await wait_any(stop, timeout=tick)
            if not self.production.unwritten or stop.is_set():
                continue
            try:
                await self.production.flush(due_only=True)
            except DeliveryError as exc:  # the delivery loop meets the same trouble and backs off
                log.warning("event=count_write_retry sink=%s workorders=%d error=%r", self.name,
                            len(self.production.unwritten), str(exc))
                await wait_any(stop, timeout=self.cfg.probe_interval)

    async def _wait_for_odoo(self, stop: asyncio.Event, delay: float, outage: bool) -> bool:
        """Wait up to `delay` s; sooner when a probe finds Odoo answering after it did not. True then.

        `outage`: the failure itself said Odoo could not be reached, so the first probe that
        answers ends the wait. Otherwise (Odoo answered with a transient error) only a probe
        that answers after one that failed does: a busy Odoo gets the whole backoff.
        """
        if delay < TIMER_RESOLUTION:  # compressed time: no probe could run within it anyway
            await retry_pause(stop, delay)
            return False
        deadline = time.monotonic() + delay
        down = outage
        self.retry_now.clear()
        self.stats.next_retry_at = time.time() + delay
        try:
            while not stop.is_set():
                step = min(deadline - time.monotonic(), self.cfg.probe_interval * (0.75 + random.random() / 2))
                if step <= 0:
                    return False
                await wait_any(stop, self.retry_now, timeout=step)
                if self.retry_now.is_set():      # a person pressed "Retry now"
                    return False
                if stop.is_set() or time.monotonic() >= deadline:
                    return False
                try:
                    await asyncio.wait_for(self.raw_client.version(),
                                           timeout=max(1.0, 2 * self.cfg.probe_interval))
                except (DeliveryError, asyncio.TimeoutError):
                    down = True
                    continue
                if down:
                    log.info("event=odoo_answers_again sink=%s retry=now", self.name)
                    return True
            return False
        finally:
            self.stats.next_retry_at = None
            self.retry_now.clear()

    async def _deliver_loop(self, stop: asyncio.Event) -> None:
        backoff = Backoff(initial=0.5, cap=self.cfg.retry_cap)
        held_backoff = Backoff(initial=1.0, cap=self.cfg.retry_cap)
        held_next = 0.0
        address = direct_address(self.cfg.url)
        away = False            # the last attempt could not connect: the next one looks first
        shown = (0, 0)          # (first seq, events) of the batch that last failed, for the log
        try:
            while not stop.is_set():
                batch: list[Stored] = []
                self._poll_key()
                try:
                    if away and address is not None:
                        # a bare connect while Odoo is away: a failed attempt at a fraction of a request's cost
                        why = await unreachable(*address, self.cfg.timeout)
                        if why is not None:
                            raise UnreachableError(f"Odoo at {self.cfg.url}: {why}")
                        away = False
                    if self.stats.extra.get("held") != 0 and time.monotonic() >= held_next:
                        # held lanes (or not known yet, at start): retried with their own backoff
                        if await self.release_held() or not self.stats.extra["held"]:
                            held_backoff.reset()
                            held_next = 0.0
                        else:
                            held_next = time.monotonic() + held_backoff.next_delay()
                    batch = await asyncio.to_thread(self.screen.read, self.store, self.cfg.batch_size)
                    if not batch and not self.production.to_finish:
                        self.stats.settle("pending" if self.stats.extra.get("held") else "idle")
                        await wait_any(self.wake, stop, timeout=1.0)
                        self.wake.clear()
                        continue
                    if batch:
                        await self.deliver(batch)
                    else:  # nothing new, but an order still waits to be finished
                        await self.finisher.finish_due()
                    backoff.reset()
                    shown = (0, 0)
                    self.stats.settle("running")
                except DeliveryError as exc:
                    away = isinstance(exc, UnreachableError)
                    if batch:
                        shown = (batch[0].seq, len(batch))
                    self.stats.retries += 1
                    self.stats.last_error = str(exc)
                    delay = backoff.next_delay()
                    paused = isinstance(exc, AuthDeliveryError)
                    self.stats.state = "paused" if paused else "retrying"
                    self.stats.extra["retry_in"] = round(delay, 3)
                    self.md.forget()
                    if paused:
                        self.raw_client.uid = None
                        if self._poll_key(force=True):    # refused: perhaps the key was rotated meanwhile
                            log.info("event=delivery_retry sink=%s reason=rotated_api_key retry=now", self.name)
                            continue
                    log.warning("event=%s sink=%s first_seq=%d events=%d retry_in=%.1fs error=%r",
                                "alarm_sink_paused" if paused else "delivery_retry", self.name,
                                *shown, delay, str(exc))
                    if paused:
                        await retry_wait(self.stats, delay, stop, self.retry_now)
                    elif await self._wait_for_odoo(stop, delay, exc.remote_name is None):
                        backoff.reset()
        finally:
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
        Events waiting for a work order are held in their lane in the same
        acknowledgement (see `pending`).
        """
        batch = [self._remap(s) if s.cls == "replay" else s for s in batch]
        self.production.begin()
        try:
            lanes = set() if self.stats.extra.get("held") == 0 else \
                {h.lane for h in await asyncio.to_thread(self.store.held, self.name)}
            out = Outcome()
            done, hold = await self._in_order(batch, lanes, out)
        except DeliveryError:
            self.production.catch_up = True  # the next pass writes a due count as soon as Odoo answers
            raise
        await asyncio.to_thread(self.store.ack, self.name, done, out.state, out.dead, out.receipts, hold)
        self.production.catch_up = False
        self.production.acknowledged()
        self._delivered(done, out)
        for stored, lane, _, _ in hold:
            log.warning("event=delivery_pending sink=%s seq=%d event_id=%s kind=%s work_center=%s "
                        "reason=no_open_work_order timeout=%gs", self.name, stored.seq, stored.event["id"],
                        stored.event["kind"], lane, self.cfg.pending_timeout)
        if hold:
            self.stats.extra["held"] = self.stats.extra.get("held", 0) + len(hold)
        if self.production.to_finish:
            await self.finisher.finish_due()  # only now: the counts that justify it are acknowledged

    async def release_held(self) -> bool:
        """Deliver the held lanes whose work center has an open order now, and dead-letter the
        held events that waited too long; True when anything left the held lanes."""
        held = await asyncio.to_thread(self.screen.held, self.store)
        self.stats.extra["held"] = len(held)
        if not held:
            return False
        self.md.forget()  # a planner may have released the order since the last look
        due = await self.pending.due([replace(h, stored=self._remap(h.stored)) if h.stored.cls == "replay" else h
                                      for h in held])
        if not due.ready and not due.expired:
            return False
        out = Outcome()
        self.production.begin()
        for stored, reason in due.expired:
            out.fail(stored, reason)
        # in order again: after a finish in a lane, its next events wait for the next order
        delivered, _still_held = await self._in_order(due.ready, set(), out)
        done = sorted([*delivered, *(s for s, _ in due.expired)], key=lambda s: s.seq)
        await asyncio.to_thread(self.store.release, self.name, done, out.state, out.dead, out.receipts)
        self.production.acknowledged()
        self._delivered(done, out)
        self.stats.extra["held"] = len(held) - len(done)
        log.info("event=held_released sink=%s delivered=%d dead_lettered=%d still_held=%d", self.name,
                 len(done) - len(out.dead), len(out.dead), len(held) - len(done))
        if self.production.to_finish:
            await self.finisher.finish_due()
        return bool(done)

    async def _in_order(self, events: list[Stored], lanes: set[str],
                        out: Outcome) -> tuple[list[Stored], list[tuple[Stored, str, str, float]]]:
        """Post `events` in order around work order starts and finishes; returns (done, to hold).

        Between two starts or finishes, each poster gets its share of the run at once (one
        call where Odoo takes lists); a start or finish is posted on its own at its place, and
        the events after it are looked at again (`pending.triage`), so the counts before a
        finish land on the order it ends, and the counts after it on the next order, or wait
        in their lane for it. `lanes` (work centers holding events) grows with what is held.
        Alarms go first, all of them: a maintenance request depends on no order or count.
        `done` keeps the events' seq order (the store acknowledges in order).
        """
        done: list[Stored] = []
        hold: list[tuple[Stored, str, str, float]] = []
        urgent = [s for s in events if s.event["kind"] in FIRST]
        if urgent:  # independent of orders and counts: never behind them
            await self._post_run(urgent, out)
            done += urgent
            events = [s for s in events if s.event["kind"] not in FIRST]
        run: list[Stored] = []
        for stored in [*events, None]:
            if stored is not None and stored.event["kind"] not in BARRIERS:
                run.append(stored)
                continue
            for part in (run, [stored] if stored is not None else []):
                if not part:
                    continue
                triage = await self.pending.triage(part, lanes)
                expired = {id(s) for s, _ in triage.expired}
                for s, reason in triage.expired:
                    out.fail(s, reason)
                await self._post_run([s for s in triage.done if id(s) not in expired], out)
                done += triage.done
                hold += triage.hold
            run = []
        done.sort(key=lambda s: s.seq)
        return done, hold

    async def _post_run(self, events: list[Stored], out: Outcome) -> None:
        """Hand `events` to the posters of their kinds (each poster's share in seq order).

        Downtimes first, then production (its counts are only tallied, or written when
        due), then the rest; what depends on the counts (`AFTER_COUNTS`) once every count
        is written.
        """
        by_kind: dict[str, list[Stored]] = {}
        for stored in events:
            kind = stored.event["kind"]
            if kind not in self.posters:
                out.fail(stored, f"event kind {kind!r} has no Odoo mapping in this version")
                continue
            by_kind.setdefault(kind, []).append(stored)
        done_posters = set()
        flushed = False
        for kind in sorted(by_kind, key=lambda k: RANK.get(k, len(RANK))):
            poster = self.posters[kind]
            if id(poster) in done_posters:
                continue
            done_posters.add(id(poster))
            if kind in AFTER_COUNTS and not flushed:
                await self.production.flush(with_pending=True)
                flushed = True
            items = [s for k in poster.kinds for s in by_kind.get(k, [])]
            items.sort(key=lambda s: s.seq)
            await poster.post(items, out)

    def _delivered(self, done: list[Stored], out: Outcome) -> None:
        self.stats.delivered += len(done) - len(out.dead)
        if out.dead:
            self.stats.dead(out.dead)
        elif done:
            self.stats.delivered_clean()
        dead = {id(stored) for stored, _ in out.dead}
        self.stats.acknowledged(s for s in done if id(s) not in dead)
        for stored, error in out.dead:
            log.error("event=dead_letter sink=%s seq=%d event_id=%s kind=%s error=%r", self.name,
                      stored.seq, stored.event["id"], stored.event["kind"], error)
