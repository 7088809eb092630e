"""The intake path of one device: driver samples -> rules -> enrich -> durable append.

Every event is signed with the device key (see `gateway.signing`) before the
append, so the store keeps, and the sinks send, exactly what was signed. When a
sink wants telemetry, each batch's good samples also become one `telemetry`
record (signed too) in the store's telemetry class.

Every event is enriched (`gateway.enrich`) with its machine's scanned context
(operator, lot, work order) and shift. The context is the state of the
machine's scan rules, shared by all pipelines through one `ContextStore`: a
batch starts from the shared copy and writes it back only once stored, so a
scan and the events after it in the same batch or in any later one (of this
device or another of the same machine) see the new context.

Each machine's shift tally (`gateway.summary`) advances with the source time of the
good samples and counts the production and scrap events: when a shift ended,
one `production_summary` and the shift's `oee` event (`gateway.oee`; with the
day's when a day ended) are stored before the events of the next shift, and
the tally and the OEE history records are stored with them (one lock per
machine across its pipelines).

A reading a rule refuses (`gateway.rules.plausible`) arrives as an
`implausible` event: each one is counted and logged with its device, tag,
raw value and origin, and stored for the sinks to hold as a dead letter, at
most one per rule per `IMPLAUSIBLE_REPEAT` seconds of source time (a device
sending garbage on every poll fills the log and the counter, not the store);
a refused *record* (`record: true`, a vendor table's bad row: each row is a
distinct record, not a repeated reading) is always stored.
A counter jump the rule marked `suspect` is counted and logged the same way,
and always stored: it carries parts a person may accept.

It owns the promise that a rule's state never moves ahead of the events it
produced: the new states and the events of one poll are written to the store in
a single transaction, and only then does the in-memory state advance. When the
store refuses (full map or disk), the state is held and the refusal is counted
and logged as an alarm, so nothing is lost. The batch is retried with backoff before the driver's
next batch is pulled: that back-pressure is what lets a driver treat "my
generator resumed" as "my last batch is safe".
"""
from __future__ import annotations

import asyncio
import logging
import math
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from drivers.base import Backoff, Driver, Quality, Sample
from gateway.config import Config, tag_names
from gateway.context import ContextStore, context_key, is_context_key
from gateway.enrich import enrich
from gateway.signing import DeviceKey
from gateway.rules import Rule
from gateway.oee import history_bytes, history_key, ideal_cycles, oee_event
from gateway.board import MachineBoard
from gateway.summary import ShiftTallies, ShiftTally, summary_key
from gateway.telemetry import Encoder as TelemetryEncoder
from gateway.trend import Trend
from store.committer import GroupCommitter
from store.queue import StoreFull

log = logging.getLogger("linebridge.pipeline")
#: seconds of source time during which a rule's further refusals are counted and logged, not stored
IMPLAUSIBLE_REPEAT = 60.0


@dataclass
class IntakeStats:
    samples: int = 0
    bad_samples: int = 0
    events: int = 0
    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    implausible: int = 0      # readings the rules refused, and counter jumps held for a person


class DevicePipeline:
    """Feeds one driver's samples through its rules into the store."""

    def __init__(self, config: Config, driver: Driver, rules: list[Rule],
                 committer: GroupCommitter, wake: Any, stats: IntakeStats,
                 signer: DeviceKey | None = None, context: ContextStore | None = None,
                 tallies: ShiftTallies | None = None, board: MachineBoard | None = None) -> None:
        self.config = config
        self.driver = driver
        self.rules = rules
        self.committer = committer
        self.store = committer.store
        self.wake = wake
        self.stats = stats
        self.signer = signer
        #: machine contexts shared with the other pipelines (a private one when alone)
        self.context = context if context is not None else ContextStore()
        self.telemetry = config.wants_telemetry
        self._encoder: TelemetryEncoder | None = None
        #: the latest sample of each tag, for status pages
        self.last: dict[str, Sample] = {}
        #: each numeric tag's last hour, for the console's trend chart: kept only when the console is
        #: configured (1.1 MiB and a few comparisons per value for 100 tags that nobody would see)
        self.trend: Trend | None = Trend() if config.webui is not None else None
        #: shift tallies shared with the other pipelines (a private copy when alone; none without shifts)
        self.tallies = tallies if tallies is not None else (
            ShiftTallies(config.shifts, ideal_cycles(config), self.store.get_state) if config.shifts else None)
        self.machines = sorted({m for m in (getattr(r, "machine", None) for r in rules) if m})
        #: each machine's parts, scrap and rate since the start, shared with the other pipelines
        self.board = board
        self.states: dict[str, Any] = {}
        #: source time of the newest good sample whose events and state are stored
        self.last_handled_ts = 0.0
        #: rule state key -> source time of its last stored `implausible` event (one entry per rule)
        self.refused_at: dict[str, float] = {}

    async def load_state(self) -> None:
        for rule in self.rules:
            key = rule.state_key
            if is_context_key(key) and self.context.get(key) is not None:
                self.states[key] = self.context.get(key)
                continue
            raw = await asyncio.to_thread(self.store.get_state, key)
            self.states[key] = rule.load_state(raw)
            if is_context_key(key):
                self.context.seed(key, self.states[key])
        if self.tallies is not None:
            for machine in self.machines:
                if machine not in self.tallies.tallies:
                    raw = await asyncio.to_thread(self.store.get_state, summary_key(machine))
                    self.tallies.tallies[machine] = ShiftTally.from_bytes(raw)

    async def run(self) -> None:
        await self.load_state()
        async for batch in self.driver.samples():
            backoff = Backoff(initial=0.5, cap=30.0)
            # the driver's next batch is pulled only once this one is stored
            while not await self.handle(batch):
                await asyncio.sleep(backoff.next_delay())

    async def handle(self, batch: list[Sample]) -> bool:
        """Store the events and rule states of one batch; False if the store refused it."""
        for sample in batch:  # the live values a person sees in the web UI, good or not
            self.last[sample.tag] = sample
        if self.trend is not None:
            self.trend.add(batch)
        async with AsyncExitStack() as stack:
            if self.tallies is not None:
                for machine in self.machines:  # sorted: pipelines sharing machines take their locks in order
                    await stack.enter_async_context(self.tallies.lock(machine))
            return await self._handle(batch)

    async def _handle(self, batch: list[Sample]) -> bool:
        self.stats.samples += len(batch)
        self.stats.bad_samples += sum(1 for s in batch if s.quality is not Quality.GOOD)
        newest = max((s.source_ts for s in batch if s.quality is Quality.GOOD), default=0.0)
        # a machine's context may have been changed by another pipeline since our last batch
        base = {k: (self.context.get(k) or v) if is_context_key(k) else v for k, v in self.states.items()}
        pending = dict(base)
        tallies = {m: self.tallies.tallies.get(m) for m in self.machines} if self.tallies is not None else {}
        tally_base = dict(tallies)
        events = []
        history: dict[str, bytes] = {}   # OEE records of the shifts and days this batch closed
        refused_at = dict(self.refused_at)
        for sample in batch:
            if self.tallies is not None and sample.quality is Quality.GOOD:
                for machine in self.machines:
                    tallies[machine], closed, records = self.tallies.advance(tallies[machine], machine,
                                                                             sample.source_ts)
                    if closed is not None:
                        events.append(self._enrich(closed.summary(self.config.gateway.id, {}), pending))
                    for record in records:
                        events.append(self._enrich(oee_event(self.config.gateway.id, record), pending))
                        history[history_key(record)] = history_bytes(record)
            for rule in self.rules:
                if not rule.matches(sample):
                    continue
                produced, pending[rule.state_key] = rule.apply(pending[rule.state_key], sample)
                for e in produced:
                    if e.kind == "implausible" or "suspect" in e.data:
                        if not self._implausible(e, rule.state_key, sample, refused_at):
                            continue
                    events.append(self._enrich(e, pending))
                    machine = e.context.get("machine")
                    if tallies.get(machine) is not None:
                        tallies[machine] = tallies[machine].count(e)
        changed = {k: v.to_bytes() for k, v in pending.items()
                   if v is not None and v != base.get(k)}
        changed.update({summary_key(m): t.to_bytes() for m, t in tallies.items()
                        if t is not None and t != tally_base[m]})
        changed.update(history)
        records = [e.to_dict() for e in events]
        if self.telemetry:
            records.extend(self._telemetry(batch))
        if not changed and not records:
            self.last_handled_ts = max(self.last_handled_ts, newest)
            return True
        if self.signer is not None:
            for record in records:
                self.signer.sign(record)
        try:
            result = await self.committer.append(records, changed)
        except StoreFull as exc:
            self.stats.refused += len(events)
            log.error("event=alarm_backlog_full device=%s events_held=%d error=%r",
                      self.driver.name, len(events), str(exc))
            return False
        self.states = pending
        self.refused_at = refused_at
        if self.tallies is not None:
            self.tallies.tallies.update(tallies)
        for key in changed:
            if is_context_key(key):
                self.context.put(key, pending[key])
        self.last_handled_ts = max(self.last_handled_ts, newest)
        self.stats.events += len(events)
        self.stats.stored += len(result.seqs)
        if self.board is not None:
            self.board.count(events)
        self.stats.duplicates += result.duplicates
        for ev, seq in zip(events, result.seqs):
            log.debug("event=stored seq=%d event_id=%s kind=%s qty=%s", seq, ev.id, ev.kind,
                      ev.data.get("quantity"))
        if result.seqs:
            self.wake.set()
        return True

    def _implausible(self, event: Any, key: str, sample: Sample, refused_at: dict[str, float]) -> bool:
        """Count and log a refused reading or a suspect jump; False when a refusal repeats too soon."""
        self.stats.implausible += 1
        data = event.data
        last = refused_at.get(key)
        repeat = (event.kind == "implausible" and not data.get("record") and last is not None
                  and 0 <= sample.source_ts - last < IMPLAUSIBLE_REPEAT)
        log.log(logging.DEBUG if repeat else logging.WARNING,
                "event=implausible device=%s tag=%s rule=%s event_id=%s held=%s origin=%r raw=%r reason=%r",
                sample.device, sample.tag, key.removeprefix("rule/"), event.id, "no" if repeat else "yes",
                sample.origin, data.get("raw", data.get("counter")), data.get("reason", data.get("suspect")))
        if repeat:
            return False
        if event.kind == "implausible":
            refused_at[key] = sample.source_ts
        return True

    def _enrich(self, event: Any, pending: dict[str, Any]) -> Any:
        machine = event.context.get("machine")
        key = context_key(machine) if machine else None
        ctx = pending[key] if key in pending else (self.context.get(key) if key else None)
        return enrich(event, self.config.machines, ctx, self.config.shifts, self.config.gateway.environment)

    def _telemetry(self, batch: list[Sample]) -> list[dict[str, Any]]:
        """One compact raw-sample record per device and batch, for MQTT historians (never for Odoo)."""
        if self._encoder is None:
            device = self.config.devices.get(self.driver.name)
            self._encoder = TelemetryEncoder(self.config.gateway.id, self.driver.name,
                                             _tag_order(device.config) if device is not None else ())
        return self._encoder.records(batch)


def _tag_order(driver_config: Any) -> list[str]:
    """The device's tags in the order they are configured (the telemetry values' order)."""
    names = getattr(driver_config, "tag_names", None)
    if isinstance(names, (list, tuple)):
        return list(names)
    tags = getattr(driver_config, "tags", None)
    return list(tags) if isinstance(tags, dict) else sorted(tag_names(driver_config))


def _json_value(value: Any) -> Any:
    """A sample value as JSON can carry it (and the signature can cover it)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return str(value)
