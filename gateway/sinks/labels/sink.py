"""The label sink worker: from its own cursor, each label an event makes is printed once, in order.

It owns the path from a stored event to paper. Events are read through the
signature check (`gateway.sinks.screen`); events no action wants are
acknowledged in bulk. For an event that makes labels, each label is rendered
(ZPL or PDF, by the printer), then: the label is written durably as
`sending`, sent with a timeout, and written durably as printed (the last one
of the event together with the cursor and the good-part counters, in one
store transaction). A printer that is off or refusing holds the sink at that
label, retried with capped, jittered backoff, so labels come out in order
when it returns and none is lost. After a kill, a `sending` label is settled
before anything else: an IPP printer is asked for its jobs (the job name is
the label id), so a label it has is not printed again and one it has not is;
a raw TCP printer cannot be asked, so the label is held for a person
(`uncertain = "hold"`) or printed again (`"reprint"`). An IPP send that
failed after the request went out (the printer went away mid-answer) is
settled the same way before the next try. A label that cannot be
rendered (a placeholder the event lacks) makes its event a dead letter naming
the placeholder. Reprints asked in the console are journaled with who asked,
queued in the ledger and printed between events. It does not render or send
itself (see `printer.py`).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from drivers.base import Backoff
from gateway.errors import DeliveryError, TransientDeliveryError
from gateway.sinks.common import SinkStats, retry_wait, wait_any
from gateway.signing import PublicKey
from gateway.sinks.labels import ledger as ledgers
from gateway.sinks.labels.config import LabelSinkConfig
from gateway.sinks.labels.ledger import Ledger
from gateway.sinks.labels.printer import IppPrinter, MaybeSent, RawPrinter, printer_for
from gateway.sinks.labels.template import Label, MissingValue, labels_for
from gateway.sinks.screen import Screen
from store.queue import Store, Stored

log = logging.getLogger("linebridge.sinks.labels")


class LabelSink:
    """One label printer fed from its own cursor in the store."""

    def __init__(self, cfg: LabelSinkConfig, store: Store, wake: asyncio.Event | None = None,
                 verify: PublicKey | None = None, printer: RawPrinter | IppPrinter | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.store = store
        self.wake = wake or asyncio.Event()
        self.printer = printer or printer_for(cfg)
        self.clock = clock
        self.stats = SinkStats()
        self.stats.extra = {"url": cfg.url, "printed": 0, "labels_held": 0, "reprints_queued": 0, "skipped": 0}
        self.retry_now = asyncio.Event()
        self.screen = Screen(self.name, verify, self.stats)
        self.key = ledgers.key(cfg.name)
        self.ledger = Ledger.from_bytes(store.get_state(self.key))
        self.stats.extra.update(labels_held=len(self.ledger.held), reprints_queued=len(self.ledger.reprints))
        self._lock = asyncio.Lock()      # one ledger write at a time, each with the newest ledger
        self._settled = False

    # -- running -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff(initial=0.5, cap=self.cfg.retry_cap)
        try:
            while not stop.is_set():
                try:
                    worked = await self.step()
                    backoff.reset()
                    self.stats.settle("running" if worked else "idle")
                    if not worked:
                        await wait_any(self.wake, stop, timeout=1.0)
                        self.wake.clear()
                except DeliveryError as exc:
                    self.stats.retries += 1
                    self.stats.last_error = str(exc)
                    self.stats.state = "retrying"
                    delay = backoff.next_delay()
                    log.warning("event=label_retry sink=%s retry_in=%.1fs error=%r", self.name, delay, str(exc))
                    await retry_wait(self.stats, delay, stop, self.retry_now)
        finally:
            self.stats.state = "stopped"

    async def step(self) -> bool:
        """One unit of work: settle a send a crash cut short, a reprint, or a batch of events.
        False when there was nothing to do."""
        if not self._settled:
            await self._settle()
            self._settled = True
        if self.ledger.reprints:
            await self._reprint_next()
            return True
        batch = await asyncio.to_thread(self.screen.read, self.store, self.cfg.batch_size)
        if not batch:
            return False
        await self.deliver(batch)
        return True

    async def deliver(self, batch: list[Stored]) -> None:
        """Print the labels of `batch` in order; acknowledge each event once its labels are on paper."""
        counters = dict(self.ledger.counters)
        quiet: list[Stored] = []          # events that print nothing, acknowledged together
        for stored in batch:
            event = stored.event
            if event.get("kind") not in self.cfg.kinds:
                quiet.append(stored)
                continue
            replay = stored.cls == "replay"     # a dead letter sent back: it counts no parts again
            before = counters
            try:
                labels, after = labels_for(event, stored.seq, self.cfg.actions, {} if replay else before)
                docs = [self.printer.render(self.cfg.templates[lb.template], lb.values) for lb in labels]
            except (MissingValue, KeyError, ValueError) as exc:
                await self._ack(quiet, counters)
                quiet = []
                reason = f"label not rendered: {exc}"
                await self._ack([stored], counters, dead=[(stored, reason)])
                self.stats.dead([(stored, reason)])
                log.error("event=dead_letter sink=%s seq=%d event_id=%s kind=%s error=%r", self.name,
                          stored.seq, event.get("id"), event.get("kind"), reason)
                continue
            if not replay:
                counters = after
            if not labels:
                quiet.append(stored)
                continue
            await self._ack(quiet, before)     # the quiet events before this one, with what they counted
            quiet = []
            progress = self.ledger.progress or {}
            start = progress.get("done", 0) if (progress.get("seq"), progress.get("cls")) == (stored.seq,
                                                                                           stored.cls) else 0
            for index in range(start, len(labels)):
                await self._print(labels[index], docs[index], stored, index, last=index == len(labels) - 1,
                                  counters=counters)
            if start >= len(labels):   # every label was settled before a crash: only the ack is left
                await self._ack([stored], counters, progress=None)
        await self._ack(quiet, counters)

    async def _print(self, label: Label, document: bytes, stored: Stored, index: int, last: bool,
                     counters: dict[str, float]) -> None:
        await self._write(lambda lg: setattr(lg, "sending", {"label": label.to_dict(), "where": "event",
                                                             "cls": stored.cls, "index": index}))
        receipt = await self._send(label, document)
        entry = {"label": label.to_dict(), "printed_at": round(self.clock(), 3), "receipt": receipt}
        self._printed(label, receipt)

        def done(lg: Ledger) -> None:
            lg.sending = None
            lg.remember(entry, self.cfg.history)
            lg.progress = {"seq": stored.seq, "cls": stored.cls, "done": index + 1}
        if last:
            await self._ack([stored], counters, progress=None, mutate=done,
                            receipts={stored.event["id"]: f"labels:{index + 1}"})
        else:
            await self._write(done)

    async def _send(self, label: Label, document: bytes) -> str:
        """Send with `sending` on disk; a send that may have reached the printer is settled (the printer
        asked) before the next try, as after a crash."""
        try:
            return await self.printer.send(label.id, document)
        except MaybeSent:
            self._settled = False
            raise

    def _printed(self, label: Label, receipt: str) -> None:
        self.stats.extra["printed"] += 1
        self.stats.delivered += 1
        self.stats.delivered_clean()
        log.info("event=label_printed sink=%s label=%s event_id=%s seq=%d template=%s receipt=%s", self.name,
                 label.id, label.event_id, label.seq, label.template, receipt)

    # -- after a crash -----------------------------------------------------------------

    async def _settle(self) -> None:
        """The label a crash left `sending`: printed (the printer has it), sent again, or held."""
        sending = self.ledger.sending
        if not sending:
            return
        label = Label.from_dict(sending["label"])
        known = await self.printer.printed(label.id)
        if known is False or (known is None and self.cfg.uncertain == "reprint"):
            log.warning("event=label_resend sink=%s label=%s event_id=%s reason=%s", self.name, label.id,
                        label.event_id, "not at the printer" if known is False else "uncertain")
            await self._write(lambda lg: setattr(lg, "sending", None))
            return
        entry = {"label": label.to_dict(), "printed_at": round(self.clock(), 3),
                 "receipt": "found at the printer" if known else None}
        if known is None:
            entry["reason"] = ("the gateway stopped while sending it: it may or may not be on paper "
                               "(a raw TCP printer cannot be asked)")
            log.warning("event=label_held sink=%s label=%s event_id=%s reason=%r", self.name, label.id,
                        label.event_id, entry["reason"])
        else:
            log.info("event=label_found sink=%s label=%s event_id=%s", self.name, label.id, label.event_id)

        def settle(lg: Ledger) -> None:
            lg.sending = None
            if sending.get("where") == "reprint":
                if lg.reprints and lg.reprints[0]["label"]["id"] == label.id:
                    lg.reprints.pop(0)
            else:
                lg.progress = {"seq": label.seq, "cls": sending.get("cls", "business"),
                               "done": int(sending.get("index", 0)) + 1}
            if known is None:
                lg.held.append(entry)
                del lg.held[:-ledgers.MAX_HELD]
            else:
                lg.remember(entry, self.cfg.history)
        await self._write(settle)
        self.stats.extra["labels_held"] = len(self.ledger.held)

    # -- reprints ----------------------------------------------------------------------

    async def reprint(self, label_id: str, who: str) -> dict[str, Any] | None:
        """Queue label `label_id` (printed or held) for printing again, journaled with `who`; None if unknown.

        Call it on the gateway's loop. A held label leaves the held list (a person decided).
        """
        entry = self.ledger.find(label_id)
        if entry is None:
            return None
        if len(self.ledger.reprints) >= ledgers.MAX_REPRINTS:
            raise TransientDeliveryError(f"{ledgers.MAX_REPRINTS} reprints are already waiting")
        request = {"label": entry["label"], "by": who, "at": round(self.clock(), 3)}

        def queue(lg: Ledger) -> None:
            lg.held = [h for h in lg.held if h["label"]["id"] != label_id]
            lg.reprints.append(request)
        label = entry["label"]
        await self._write(queue, note=("reprint", who, [[label["event_id"], label["seq"], label_id]]))
        self.stats.extra.update(labels_held=len(self.ledger.held), reprints_queued=len(self.ledger.reprints))
        log.info("event=label_reprint_requested sink=%s label=%s event_id=%s by=%s", self.name, label_id,
                 label["event_id"], who)
        self.wake.set()
        return request

    async def discard(self, label_id: str, who: str) -> bool:
        """A held label a person says is on paper: it leaves the held list, journaled with `who`."""
        entry = next((h for h in self.ledger.held if h["label"]["id"] == label_id), None)
        if entry is None:
            return False

        def drop(lg: Ledger) -> None:
            lg.held = [h for h in lg.held if h["label"]["id"] != label_id]
            lg.remember(dict(entry, receipt=f"confirmed on paper by {who}"), self.cfg.history)
        label = entry["label"]
        await self._write(drop, note=("label_confirmed", who, [[label["event_id"], label["seq"], label_id]]))
        self.stats.extra["labels_held"] = len(self.ledger.held)
        return True

    async def _reprint_next(self) -> None:
        request = self.ledger.reprints[0]
        label = Label.from_dict(request["label"])
        template = self.cfg.templates.get(label.template)
        if template is None:
            log.error("event=label_reprint_dropped sink=%s label=%s reason=%r", self.name, label.id,
                      f"template {label.template!r} is no longer configured")
            await self._write(lambda lg: lg.reprints.pop(0))
            return
        try:
            document = self.printer.render(template, label.values)
        except (MissingValue, ValueError) as exc:   # the template changed since the label was printed
            log.error("event=label_reprint_dropped sink=%s label=%s reason=%r", self.name, label.id,
                      f"template {label.template!r} no longer renders this label: {exc}")
            await self._write(lambda lg: lg.reprints.pop(0))
            return
        await self._write(lambda lg: setattr(lg, "sending", {"label": label.to_dict(), "where": "reprint"}))
        receipt = await self._send(label, document)
        self._printed(label, receipt)
        entry = {"label": label.to_dict(), "printed_at": round(self.clock(), 3), "receipt": receipt,
                 "reprint_by": request["by"]}

        def done(lg: Ledger) -> None:
            lg.sending = None
            lg.reprints.pop(0)
            lg.remember(entry, self.cfg.history)
        await self._write(done)
        self.stats.extra["reprints_queued"] = len(self.ledger.reprints)

    # -- the ledger in the store -------------------------------------------------------

    async def _write(self, mutate: Callable[[Ledger], Any], note: tuple[str, str, list[Any]] | None = None) -> None:
        async with self._lock:
            mutate(self.ledger)
            state = {self.key: self.ledger.to_bytes()}
            if note is None:
                await asyncio.to_thread(self.store.put_state, self.key, state[self.key])
            else:
                await asyncio.to_thread(self.store.note, self.name, note[0], note[1], note[2], state)

    async def _ack(self, done: list[Stored], counters: dict[str, float], progress: Any = ...,
                   dead: list[tuple[Stored, str]] | None = None, mutate: Callable[[Ledger], Any] | None = None,
                   receipts: dict[str, str] | None = None) -> None:
        if not done:
            return

        def apply(lg: Ledger) -> None:
            if mutate is not None:
                mutate(lg)
            lg.counters = dict(counters)
            if progress is not ...:
                lg.progress = progress
        async with self._lock:
            apply(self.ledger)
            state = {self.key: self.ledger.to_bytes()}
            await asyncio.to_thread(self.store.ack, self.name, done, state, dead, receipts)
        self.stats.acknowledged(s for s in done if not dead or s not in [d for d, _ in dead])
        self.stats.extra["skipped"] += sum(1 for s in done if s.event.get("kind") not in self.cfg.kinds)

    def labels(self) -> dict[str, Any]:
        """For the console: printed labels (newest first), held ones and waiting reprints."""
        lg = self.ledger
        return {"sink": self.name, "printer": self.cfg.url, "printed": lg.printed, "templates": sorted(self.cfg.templates),
                "history": list(reversed(lg.history)), "held": list(lg.held), "reprints": list(lg.reprints),
                "sending": lg.sending}

