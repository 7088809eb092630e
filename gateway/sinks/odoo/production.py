"""Production on the work order: absolute `qty_producing`, never a blind increment, at a bounded pace.

It owns the mapping of `production` events to Odoo: the event's work center
resolves (through the master-data cache) to its open work order, which
receives the gateway's running count for that order as `qty_producing`; Odoo
carries it to the manufacturing order. The running count (the tally) lives in
the store and moves only in the transaction that acknowledges the events, so
a retried delivery writes the very same absolute value again and changes
nothing.

The count is written at most once per work order per `interval` seconds (each
write adds a stock.move.line per component move in Odoo; after every tenth
write the order's component move lines are merged again, see `movelines`, so
a write's cost stays flat over the order): the first count of an order at once, later counts once
the interval passed, by the sink's writer task beside the delivery loop
(`flush(due_only=True)`), so an alarm never waits behind a count write, except
in the first pass after a failed one (an outage: `catch_up`), which writes a
due count itself as soon as it has tallied it, so Odoo shows the parts as soon
as it answers again rather than after that whole pass and the writer's tick; and
every count still unwritten before anything that depends on it: a work order
start or finish, auto-finish, consumption, a shift reconciliation, and
shutdown (`flush()`). The counts not written yet are kept in
the store with the events' acknowledgement (`UNWRITTEN`), so a restart writes
them first; the absolute count keeps Odoo exact whatever was skipped.

The tally of an order starts from what Odoo already shows for it, read once and
stored before the first write, except the quantity Odoo proposes itself: a
work order started in Odoo (`button_start`) gets its whole remaining quantity
as `qty_producing` before any part was made, which is not a count (see
`baseline`); a start delivered by this sink stores the count Odoo had before it.

The open order's expected duration over its quantity is kept, with the
acknowledgement, as its machine's ideal cycle for OEE (`ideal/<machine>`, see
`gateway.oee`), written only when it changed.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Callable

from gateway.errors import DeliveryError, PermanentDeliveryError
from gateway.oee import ideal_key
from gateway.sinks.odoo.batch import Outcome, held_as_suspect
from gateway.sinks.odoo.masterdata import MasterData, WorkOrder
from gateway.sinks.odoo.movelines import MERGE_EVERY, MoveLines
from store.queue import Store, Stored

log = logging.getLogger("linebridge.sinks.odoo")


def encode_tally(qty: float) -> bytes:
    return json.dumps({"qty": qty}).encode("utf-8")


def decode_tally(raw: bytes | None) -> float | None:
    return None if raw is None else float(json.loads(raw)["qty"])


def baseline(row: dict[str, Any]) -> float:
    """The count an order's tally starts from, from Odoo's work order (qty_producing, qty_remaining, state).

    Odoo's `button_start` sets a work order's `qty_producing` to its whole remaining
    quantity when it was 0 (1 for a serial-tracked product): a proposal for the
    person who will record production, not parts made. Such a figure counts as 0;
    any other is production recorded before the gateway's first count.
    """
    qty = float(row.get("qty_producing") or 0.0)
    remaining = float(row.get("qty_remaining") or 0.0)
    if row.get("state") == "progress" and qty > 0 and abs(qty - remaining) < 1e-9:
        return 0.0
    return qty


class ProductionPoster:
    kinds = ("production",)

    def __init__(self, client: Any, masterdata: MasterData, store: Store, sink: str,
                 auto_finish: bool = False, interval: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.md = masterdata
        self.store = store
        self.sink = sink
        self.auto_finish = auto_finish
        self.interval = interval
        self.clock = clock
        #: work orders whose count reached their quantity, to finish once the count is acknowledged
        self.to_finish: dict[int, WorkOrder] = {}
        #: work order id -> (order, count) counted but not written to Odoo yet
        self.unwritten: dict[int, tuple[WorkOrder, float]] = {}
        #: this pass's counts, not acknowledged yet (None: written already); `acknowledged` settles them
        self.pending: dict[int, tuple[WorkOrder, float] | None] = {}
        self._written_at: dict[int, float] = {}
        self._lock = asyncio.Lock()
        self.writes = 0
        self.lines = MoveLines(client, sink)
        #: work order id -> count writes since its order's move lines were last merged
        self._since_merge: dict[int, int] = {}
        #: the last pass failed (Odoo was away): the next one writes a due count itself, at once
        self.catch_up = False
        #: machine -> (work order id, ideal seconds per part) stored, and this pass's, not acknowledged yet
        self._ideal: dict[str, tuple[int, float]] = {}
        self._ideal_pending: dict[str, tuple[int, float]] = {}

    @property
    def unwritten_key(self) -> str:
        return f"sink/{self.sink}/unwritten"

    def tally_key(self, workorder_id: int) -> str:
        return f"sink/{self.sink}/workorder/{workorder_id}/qty"

    async def odoo_qty(self, workorder_id: int) -> float:
        rows = await self.client.execute_kw("mrp.workorder", "read", [[workorder_id]],
                                            {"fields": ["qty_producing"]})
        if not rows:
            raise PermanentDeliveryError(f"work order {workorder_id} no longer exists in Odoo")
        return float(rows[0]["qty_producing"] or 0.0)

    async def odoo_baseline(self, workorder_id: int) -> float:
        rows = await self.client.execute_kw("mrp.workorder", "read", [[workorder_id]],
                                            {"fields": ["qty_producing", "qty_remaining", "state"]})
        if not rows:
            raise PermanentDeliveryError(f"work order {workorder_id} no longer exists in Odoo")
        return baseline(rows[0])

    def load(self) -> None:
        """The counts a previous run acknowledged but did not write (a kill, an outage at shutdown)."""
        raw = self.store.get_state(self.unwritten_key)
        for wo_id, row in (json.loads(raw) if raw else {}).items():
            self.unwritten[int(wo_id)] = (WorkOrder(**row["order"]), float(row["qty"]))

    def _merged(self) -> dict[int, tuple[WorkOrder, float]]:
        merged = dict(self.unwritten)
        for wo_id, entry in self.pending.items():
            if entry is None:
                merged.pop(wo_id, None)
            else:
                merged[wo_id] = entry
        return merged

    def _encode_unwritten(self, entries: dict[int, tuple[WorkOrder, float]]) -> bytes:
        return json.dumps({str(k): {"order": vars(wo), "qty": qty} for k, (wo, qty) in entries.items()},
                          sort_keys=True).encode("utf-8")

    def begin(self) -> None:
        """A delivery pass starts: what an aborted pass counted is forgotten (it is counted again)."""
        self.pending.clear()
        self._ideal_pending.clear()

    def acknowledged(self) -> None:
        """The pass's events are acknowledged: its unwritten counts join those the writer flushes."""
        self.unwritten = self._merged()
        self.pending.clear()
        self._ideal.update(self._ideal_pending)
        self._ideal_pending.clear()

    async def post(self, items: list[Stored], out: Outcome) -> None:
        groups: dict[int, tuple[WorkOrder, list[Stored]]] = {}
        for stored in items:
            if held_as_suspect(stored, out):
                continue
            code = (stored.event.get("context") or {}).get("work_center")
            try:
                if not code:
                    raise PermanentDeliveryError(f"machine {stored.event.get('context', {}).get('machine')!r} "
                                                 "is not mapped to a work center")
                wo = await self.md.open_workorder(code)
            except PermanentDeliveryError as exc:
                out.fail(stored, str(exc))
                continue
            groups.setdefault(wo.id, (wo, []))[1].append(stored)
        for wo_id, (wo, group) in groups.items():
            key = self.tally_key(wo_id)
            raw = out.state.get(key)  # counted earlier in this very pass (before a start or finish)
            base = decode_tally(raw if raw is not None else await asyncio.to_thread(self.store.get_state, key))
            if base is None:
                # first contact with this order: start from Odoo's figure, stored before any write
                base = await self.odoo_baseline(wo_id)
                await asyncio.to_thread(self.store.put_state, key, encode_tally(base))
            qty = base + sum(float(s.event["data"]["quantity"]) for s in group)
            if self.interval <= 0 or wo_id not in self._written_at or (self.catch_up and self._due(wo_id)):
                # every batch (interval 0), the order's first count, or a due count after an outage: at once.
                # Later counts are the writer's (`flush(due_only=True)`), so a delivery pass never waits for a
                # count write
                try:
                    await self._write(wo, qty)
                except PermanentDeliveryError as exc:
                    for s in group:
                        out.fail(s, str(exc))
                    continue
                self.pending[wo_id] = None
            else:
                self.pending[wo_id] = (wo, qty)
            out.state[self.unwritten_key] = self._encode_unwritten(self._merged())
            out.state[key] = encode_tally(qty)
            if self.auto_finish and wo.qty_production and qty >= wo.qty_production:
                self.to_finish[wo.id] = wo
            self._cache_ideal(wo, group, out)
            for s in group:
                out.receipts[s.event["id"]] = f"mrp.workorder,{wo.id}"
            log.info("event=delivered sink=%s model=mrp.workorder id=%d workorder=%s production=%s "
                     "qty_producing=%s events=%d last_event_id=%s written=%s", self.sink, wo.id, wo.name,
                     wo.production, _fmt(qty), len(group), group[-1].event["id"], self.pending[wo_id] is None)

    def _cache_ideal(self, wo: WorkOrder, group: list[Stored], out: Outcome) -> None:
        """Keep the order's expected seconds per part as its machine's ideal cycle (`gateway.oee`), with
        the cursor; written only when it changed, so a steady order costs one comparison per pass."""
        machine = (group[-1].event.get("context") or {}).get("machine")
        if not machine or wo.duration_expected <= 0 or wo.qty_production <= 0:
            return
        seconds = round(wo.duration_expected * 60.0 / wo.qty_production, 4)
        if self._ideal_pending.get(machine, self._ideal.get(machine)) == (wo.id, seconds):
            return
        self._ideal_pending[machine] = (wo.id, seconds)
        out.state[ideal_key(machine)] = json.dumps(
            {"seconds": seconds, "source": "odoo", "workorder": wo.id,
             "duration_expected_min": wo.duration_expected, "qty_production": wo.qty_production}).encode("utf-8")
        log.info("event=ideal_cycle sink=%s machine=%s workorder=%s seconds=%s", self.sink, machine, wo.name, seconds)

    def _due(self, wo_id: int) -> bool:
        last = self._written_at.get(wo_id)
        return self.interval <= 0 or last is None or self.clock() - last >= self.interval

    async def _write(self, wo: WorkOrder, qty: float) -> None:
        await self.client.execute_kw("mrp.workorder", "write", [[wo.id], {"qty_producing": qty}])
        self._since_merge[wo.id] = self._since_merge.get(wo.id, 0) + 1
        if self._since_merge[wo.id] >= MERGE_EVERY:  # a write's cost stays flat over the order (see movelines)
            await self.lines.compact(wo.production_id)
            self._since_merge[wo.id] = 0
        self._written_at[wo.id] = self.clock()
        self.writes += 1
        if len(self._written_at) > 1000:  # bounded: the oldest orders are long finished
            for old in sorted(self._written_at, key=self._written_at.__getitem__)[:500]:
                del self._written_at[old]
                self._since_merge.pop(old, None)

    async def flush(self, due_only: bool = False, workorder_id: int | None = None,
                    with_pending: bool = False) -> None:
        """Write the counts not written yet (only those whose interval passed, with `due_only`).

        The acknowledged ones; `with_pending` (from the delivery pass, before what depends
        on the count) this pass's too: writing an absolute count twice changes nothing.

        A transient error leaves them to the next flush (and raises); a permanent one (the
        order was finished or deleted in Odoo meanwhile) is logged as an alarm and dropped:
        its events are acknowledged, the count stays in the store and the journal.
        """
        async with self._lock:
            changed = False
            todo = self._merged() if with_pending else dict(self.unwritten)
            try:
                for wo_id, (wo, qty) in todo.items():
                    if (workorder_id is not None and wo_id != workorder_id) or (due_only and not self._due(wo_id)):
                        continue
                    try:
                        await self._write(wo, qty)
                    except PermanentDeliveryError as exc:
                        log.error("event=alarm_count_not_written sink=%s model=mrp.workorder id=%d workorder=%s "
                                  "production=%s qty_producing=%s error=%r", self.sink, wo.id, wo.name,
                                  wo.production, _fmt(qty), str(exc))
                    else:
                        log.info("event=count_written sink=%s model=mrp.workorder id=%d workorder=%s "
                                 "qty_producing=%s", self.sink, wo.id, wo.name, _fmt(qty))
                    if self.unwritten.get(wo_id) == (wo, qty):
                        del self.unwritten[wo_id]
                        changed = True
                    # only the count it wrote: a newer one counted meanwhile by the pass still waits
                    if self.pending.get(wo_id) == (wo, qty):
                        self.pending[wo_id] = None
            finally:
                if changed:
                    await asyncio.to_thread(self.store.put_state, self.unwritten_key,
                                            self._encode_unwritten(self.unwritten))

    async def close(self, timeout: float) -> None:
        """At shutdown: write what is unwritten, within `timeout`; what is left is written at the next start."""
        if not self.unwritten:
            return
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except (DeliveryError, asyncio.TimeoutError) as exc:
            log.warning("event=count_write_deferred sink=%s workorders=%d error=%r", self.sink,
                        len(self.unwritten), str(exc))


def _fmt(x: Any) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


class OrderFinisher:
    """Auto-finish: a work order whose count reached its quantity is finished and its order marked done.

    It runs only after the count was acknowledged in the store, so a retried
    delivery can never move parts to the next order. Each step reads the state
    first (finishing twice changes nothing) and answers Odoo's wizards the way a
    planner would for a completed order: no backorder, consumption as recorded.
    A wizard it does not know stops there with a warning; the parts stay recorded.
    """

    WIZARD_CONTEXT = {"mrp.production.backorder": {"skip_backorder": True, "mo_ids_to_backorder": []},
                      "mrp.consumption.warning": {"skip_consumption": True}}

    def __init__(self, poster: ProductionPoster) -> None:
        self.poster = poster

    async def finish_due(self) -> None:
        for wo_id, wo in list(self.poster.to_finish.items()):
            await self.poster.flush(workorder_id=wo_id)  # the count first: it justifies the finish
            try:
                await self.finish(wo)
            except PermanentDeliveryError as exc:
                log.warning("event=auto_finish_failed sink=%s workorder=%s production=%s error=%r",
                            self.poster.sink, wo.name, wo.production, str(exc))
            del self.poster.to_finish[wo_id]
            self.poster.md.forget()

    async def finish(self, wo: WorkOrder) -> None:
        client = self.poster.client
        (row,) = await client.execute_kw("mrp.workorder", "read", [[wo.id]], {"fields": ["state"]}) or [{}]
        if row.get("state") not in ("done", "cancel"):
            await client.execute_kw("mrp.workorder", "button_finish", [[wo.id]])
        (mo,) = await client.execute_kw("mrp.production", "read", [[wo.production_id]],
                                        {"fields": ["state"]}) or [{}]
        if mo.get("state") in ("done", "cancel"):
            return
        context: dict[str, Any] = {}
        result = await client.execute_kw("mrp.production", "button_mark_done", [[wo.production_id]])
        for _ in range(len(self.WIZARD_CONTEXT) + 1):
            wizard = result.get("res_model") if isinstance(result, dict) else None
            if wizard not in self.WIZARD_CONTEXT:
                break
            context.update(self.WIZARD_CONTEXT[wizard])
            result = await client.execute_kw("mrp.production", "button_mark_done", [[wo.production_id]],
                                             {"context": context})
        if isinstance(result, dict) and result.get("res_model") not in (None, "mrp.production"):
            log.warning("event=auto_finish_incomplete sink=%s production=%s wizard=%s: Odoo asks a person",
                        self.poster.sink, wo.production, result.get("res_model"))
            return
        log.info("event=order_finished sink=%s workorder=%s production=%s", self.poster.sink, wo.name,
                 wo.production)
