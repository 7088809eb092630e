"""Quality results as a note on the manufacturing order being made.

It owns `quality_result` events (a characteristic, the measured value, its
unit and limits, and pass/fail). Odoo Community has no quality records and
OCA's `quality_control_oca` is rarely installed on a line's first day, so the
result is posted in the order's chatter (`message_post`, an internal note)
where planners and quality staff see it. The note names the event id; before
posting, the sink looks for a note with that id on the order, so a retry finds
it instead of posting twice.
"""
from __future__ import annotations

import html
import logging
from typing import Any

from gateway.errors import PermanentDeliveryError
from gateway.sinks.odoo.batch import Outcome
from gateway.sinks.odoo.masterdata import MasterData
from store.queue import Stored

log = logging.getLogger("linebridge.sinks.odoo")


def note(event: dict[str, Any]) -> str:
    d = event["data"]
    verdict = {True: "PASS", False: "FAIL"}.get(d.get("passed"), str(d.get("result", "")).upper() or "RESULT")
    limits = ""
    if d.get("low") is not None or d.get("high") is not None:
        limits = f" (limits {d.get('low', '-')} .. {d.get('high', '-')})"
    return (f"Quality {verdict}: {d.get('characteristic', 'measurement')} = {d.get('value')} "
            f"{d.get('unit', '')}{limits} on {(event.get('context') or {}).get('machine', '?')} at {event['ts']} "
            f"[Linebridge event {event['id']}]")


class QualityPoster:
    kinds = ("quality_result",)

    def __init__(self, client: Any, masterdata: MasterData, sink: str) -> None:
        self.client = client
        self.md = masterdata
        self.sink = sink

    async def post(self, items: list[Stored], out: Outcome) -> None:
        for stored in items:
            ev = stored.event
            try:
                code = (ev.get("context") or {}).get("work_center")
                if not code:
                    raise PermanentDeliveryError("quality result has no work center in its context")
                wo = await self.md.open_workorder(code)
                found = await self.client.execute_kw(
                    "mail.message", "search_read",
                    [[["model", "=", "mrp.production"], ["res_id", "=", wo.production_id],
                      ["body", "ilike", ev["id"]]]], {"fields": ["id"], "limit": 1})
                if found:
                    message = found[0]["id"]
                else:
                    message = await self.client.execute_kw(
                        "mrp.production", "message_post", [[wo.production_id]],
                        {"body": html.escape(note(ev)), "message_type": "comment",
                         "subtype_xmlid": "mail.mt_note"})
                    if isinstance(message, list):
                        message = message[0]
            except PermanentDeliveryError as exc:
                out.fail(stored, str(exc))
                continue
            out.receipts[ev["id"]] = f"mail.message,{message}"
            log.info("event=delivered sink=%s model=mail.message id=%s production=%s event_id=%s",
                     self.sink, message, wo.production, ev["id"])
