"""Downtime: `mrp.workcenter.productivity` logs opened and closed on the work center.

It owns `downtime_start` and `downtime_end`. A start becomes a log with the
loss reason of its alarm code (or the sink's default loss, of type
availability), created through `load` keyed by the event's external id, so a
retry finds the log instead of opening a second one. An end names its start
event; the log is found by that external id and gets `date_end` (an absolute
value: writing it twice changes nothing). Datetimes go to Odoo as UTC in its
own `YYYY-MM-DD HH:MM:SS` format.
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

FIELDS = ["id", "workcenter_id/.id", "loss_id/.id", "date_start", "description"]


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
        rows: list[tuple[Stored, list[str]]] = []
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
            rows.append((stored, [xml_id(ev["id"]), str(wc), str(loss), odoo_datetime(ev["ts"]),
                                  f"{title} (Linebridge {ev['gateway']}, event {ev['id']})"]))
        if rows:
            for event_id, rid in (await load_rows(self.client, "mrp.workcenter.productivity", FIELDS,
                                                  rows, out)).items():
                out.receipts[event_id] = f"mrp.workcenter.productivity,{rid}"
                log.info("event=delivered sink=%s model=mrp.workcenter.productivity id=%d state=open event_id=%s",
                         self.sink, rid, event_id)
        if not ends:
            return
        names = sorted({s.event["data"]["start_event_id"] for s in ends})
        found = await self.client.execute_kw(
            "ir.model.data", "search_read",
            [[["module", "=", MODULE], ["name", "in", names], ["model", "=", "mrp.workcenter.productivity"]]],
            {"fields": ["name", "res_id"]})
        logs = {r["name"]: r["res_id"] for r in found}
        for stored in ends:
            ev = stored.event
            rid = logs.get(ev["data"]["start_event_id"])
            if rid is None:
                out.fail(stored, f"the downtime start {ev['data']['start_event_id']} is not in Odoo "
                                 "(dead-lettered or discarded?): nothing to close")
                continue
            try:
                await self.client.execute_kw("mrp.workcenter.productivity", "write",
                                             [[rid], {"date_end": odoo_datetime(ev["ts"])}])
            except PermanentDeliveryError as exc:
                out.fail(stored, str(exc))
                continue
            out.receipts[ev["id"]] = f"mrp.workcenter.productivity,{rid}"
            log.info("event=delivered sink=%s model=mrp.workcenter.productivity id=%d state=closed "
                     "duration_s=%s event_id=%s", self.sink, rid, ev["data"].get("duration_s"), ev["id"])
