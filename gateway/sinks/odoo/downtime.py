"""Downtime: `mrp.workcenter.productivity` logs opened and closed on the work center.

It owns `downtime_start` and `downtime_end`. A start becomes a log with the
loss reason of its alarm code (or the sink's default loss, of type
availability), created through `load` keyed by the event's external id, so a
retry finds the log instead of opening a second one; when its end is in the
same pass, the log is made closed (both dates in one row). The other ends name
their start event: their logs are found by those external ids and get
`date_end` in one more `load` keyed by the same external ids (an update, with
an absolute value: writing it twice changes nothing). Starts always go before
their ends. Datetimes go to Odoo as UTC in its own `YYYY-MM-DD HH:MM:SS` format.
"""
from __future__ import annotations

import logging
from typing import Any

from gateway.config import AlarmCode
from gateway.errors import PermanentDeliveryError
from gateway.sinks.odoo.batch import MODULE, Outcome, load_rows, odoo_datetime, xml_id
from gateway.sinks.odoo.masterdata import MasterData
from store.queue import Stored

log = logging.getLogger("linebridge.sinks.odoo")

FIELDS = ["id", "workcenter_id/.id", "loss_id/.id", "date_start", "date_end", "description"]


class DowntimePoster:
    kinds = ("downtime_start", "downtime_end")

    def __init__(self, client: Any, masterdata: MasterData, sink: str, default_loss: str,
                 codes: dict[int, AlarmCode]) -> None:
        self.client = client
        self.md = masterdata
        self.sink = sink
        self.default_loss = default_loss
        self.codes = codes

    async def post(self, items: list[Stored], out: Outcome) -> None:
        starts = [s for s in items if s.event["kind"] == "downtime_start"]
        ends = [s for s in items if s.event["kind"] == "downtime_end"]
        # an end whose start is in the same pass closes the log as it is made: one row with both dates
        end_of: dict[str, list[Stored]] = {}
        for stored in ends:
            end_of.setdefault(stored.event["data"].get("start_event_id"), []).append(stored)
        rows: list[tuple[Stored, list[str]]] = []
        closed: dict[str, list[Stored]] = {}
        for stored in starts:
            ev = stored.event
            try:
                code = (ev.get("context") or {}).get("work_center")
                if not code:
                    raise PermanentDeliveryError("downtime event has no work center in its context")
                wc = await self.md.lookup("workcenter", code)
                alarm = self.codes.get(int(ev["data"].get("code") or 0))
                loss = await self.md.lookup("loss", (alarm.loss if alarm and alarm.loss else self.default_loss))
            except PermanentDeliveryError as exc:
                out.fail(stored, str(exc))
                continue
            title = alarm.title if alarm else f"alarm {ev['data'].get('code')}"
            if ev["id"] in end_of:
                closed[ev["id"]] = end_of[ev["id"]]
            rows.append((stored, [xml_id(ev["id"]), str(wc), str(loss), odoo_datetime(ev["ts"]),
                                  odoo_datetime(end_of[ev["id"]][-1].event["ts"]) if ev["id"] in end_of else "",
                                  f"{title} (Linebridge {ev['gateway']}, event {ev['id']})"]))
        created: dict[str, int] = {}
        for ended in (False, True):  # an open log is never written without date_end over a closed one
            part = [(s, r if ended else r[:4] + r[5:]) for s, r in rows if (s.event["id"] in closed) == ended]
            if part:
                created |= await load_rows(self.client, "mrp.workcenter.productivity",
                                           FIELDS if ended else FIELDS[:4] + FIELDS[5:], part, out)
        for event_id, rid in created.items():
            out.receipts[event_id] = f"mrp.workcenter.productivity,{rid}"
            log.info("event=delivered sink=%s model=mrp.workcenter.productivity id=%d state=%s event_id=%s",
                     self.sink, rid, "closed" if event_id in closed else "open", event_id)
            for end in closed.get(event_id, []):
                self._closed(end, rid, out)
        dead = {s.event["id"]: e for s, e in out.dead}
        for stored in starts:  # a start that did not land takes its ends of this pass with it
            for end in end_of.get(stored.event["id"], []) if stored.event["id"] not in created else []:
                out.fail(end, f"its downtime start {stored.event['id']} was not delivered: "
                              f"{dead.get(stored.event['id'], 'unknown')}")
        await self._close(self._open_ends(ends, {s.event["id"] for s in starts}), out)

    @staticmethod
    def _open_ends(ends: list[Stored], starts: set[str]) -> list[Stored]:
        """The ends whose start is not in this pass: their logs are in Odoo already, or nowhere."""
        return [s for s in ends if s.event["data"].get("start_event_id") not in starts]

    async def _close(self, ends: list[Stored], out: Outcome) -> None:
        """Close the logs of `ends` with one `load` keyed by their starts' external ids (an update)."""
        if not ends:
            return
        names = sorted({s.event["data"]["start_event_id"] for s in ends})
        found = await self.client.execute_kw(
            "ir.model.data", "search_read",
            [[["module", "=", MODULE], ["name", "in", names], ["model", "=", "mrp.workcenter.productivity"]]],
            {"fields": ["name", "res_id"]})
        logs = {r["name"]: r["res_id"] for r in found}
        by_start: dict[str, list[Stored]] = {}
        for stored in ends:
            start = stored.event["data"]["start_event_id"]
            if logs.get(start) is None:
                out.fail(stored, f"the downtime start {start} is not in Odoo (dead-lettered or discarded?): "
                                 "nothing to close")
                continue
            by_start.setdefault(start, []).append(stored)
        # one row per log (an end delivered twice in a pass: its latest)
        rows = [(group[-1], [xml_id(start), odoo_datetime(group[-1].event["ts"])]) for start, group in by_start.items()]
        landed = await load_rows(self.client, "mrp.workcenter.productivity", ["id", "date_end"], rows, out) \
            if rows else {}
        dead = {s.event["id"]: e for s, e in out.dead}
        for start, group in by_start.items():
            for stored in group:
                if group[-1].event["id"] in landed:
                    self._closed(stored, logs[start], out)
                elif stored is not group[-1]:
                    out.fail(stored, dead.get(group[-1].event["id"], "the log could not be closed"))

    def _closed(self, end: Stored, rid: int, out: Outcome) -> None:
        out.receipts[end.event["id"]] = f"mrp.workcenter.productivity,{rid}"
        log.info("event=delivered sink=%s model=mrp.workcenter.productivity id=%d state=closed "
                 "duration_s=%s event_id=%s", self.sink, rid, end.event["data"].get("duration_s"), end.event["id"])
