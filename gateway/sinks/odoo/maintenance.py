"""Alarms as corrective maintenance requests: one open request per equipment and alarm code.

It owns `alarm` and `maintenance_due`. The machine's equipment (by serial
number) and the alarm code name the request (`[code] title`); if an open
request (stage not done) already exists for that equipment and code, the event
is recorded against it and nothing new is created, so a flapping alarm does not
bury the maintenance team. Otherwise the request is created through `load`
keyed by the event's external id, so a retry finds it. The priority comes from
the code's configuration. The open requests of every equipment and code of a
batch are read in one search.
"""
from __future__ import annotations

import html
import logging
from typing import Any

from gateway.config import AlarmCode
from gateway.errors import PermanentDeliveryError
from gateway.sinks.odoo.batch import Outcome, load_rows, xml_id
from gateway.sinks.odoo.masterdata import MasterData
from store.queue import Stored

log = logging.getLogger("linebridge.sinks.odoo")

FIELDS = ["id", "name", "equipment_id/.id", "maintenance_type", "priority", "description"]


class MaintenancePoster:
    kinds = ("alarm", "maintenance_due")

    def __init__(self, client: Any, masterdata: MasterData, sink: str, codes: dict[int, AlarmCode]) -> None:
        self.client = client
        self.md = masterdata
        self.sink = sink
        self.codes = codes

    async def post(self, items: list[Stored], out: Outcome) -> None:
        rows: list[tuple[Stored, list[str]]] = []
        first_of: dict[tuple[int, str], Stored] = {}
        followers: list[tuple[Stored, tuple[int, str]]] = []
        keyed: list[tuple[Stored, tuple[int, str]]] = []
        for stored in items:
            ev = stored.event
            try:
                serial = (ev.get("context") or {}).get("equipment")
                if not serial:
                    raise PermanentDeliveryError(f"machine {ev.get('context', {}).get('machine')!r} "
                                                 "is not mapped to an equipment")
                eq = await self.md.lookup("equipment", serial)
            except PermanentDeliveryError as exc:
                out.fail(stored, str(exc))
                continue
            keyed.append((stored, (eq, str(ev["data"].get("code") or ev["kind"]))))
        found = await self._open_requests({key for _, key in keyed})
        for stored, key in keyed:
            ev = stored.event
            eq, code = key
            if key in first_of:
                followers.append((stored, key))
                continue
            if key in found:
                out.receipts[ev["id"]] = f"maintenance.request,{found[key]}"
                log.info("event=delivered sink=%s model=maintenance.request id=%d state=already_open "
                         "event_id=%s", self.sink, found[key], ev["id"])
                continue
            first_of[key] = stored
            spec = self.codes.get(int(code)) if code.isdigit() else None
            title = spec.title if spec else ("Maintenance due" if ev["kind"] == "maintenance_due" else "Alarm")
            ctx = ev.get("context") or {}
            machine = ctx.get("machine") or ctx.get("equipment")
            body = (f"<p>{html.escape(title)} on {html.escape(str(machine))} at {html.escape(ev['ts'])}, "
                    f"reported by Linebridge gateway {html.escape(ev['gateway'])} "
                    f"(event {html.escape(ev['id'])}).</p>")
            rows.append((stored, [xml_id(ev["id"]), f"[{code}] {title} on {machine}", str(eq),
                                  "corrective", spec.priority if spec else "2", body]))
        created = await load_rows(self.client, "maintenance.request", FIELDS, rows, out) if rows else {}
        for event_id, rid in created.items():
            out.receipts[event_id] = f"maintenance.request,{rid}"
            log.info("event=delivered sink=%s model=maintenance.request id=%d state=created event_id=%s",
                     self.sink, rid, event_id)
        dead_ids = {s.event["id"] for s, _ in out.dead}
        for stored, key in followers:
            first = first_of[key].event["id"]
            if first in out.receipts:
                out.receipts[stored.event["id"]] = out.receipts[first]
            elif first in dead_ids:
                out.fail(stored, f"the request for this alarm could not be created (see {first})")

    async def _open_requests(self, keys: set[tuple[int, str]]) -> dict[tuple[int, str], int]:
        """(equipment, code) -> its oldest open request, for all `keys` in one search."""
        if not keys:
            return {}
        codes = sorted({code for _, code in keys})
        domain: list[Any] = [["equipment_id", "in", sorted({eq for eq, _ in keys})], ["done", "=", False]]
        domain += ["|"] * (len(codes) - 1) + [["name", "=like", f"[{code}]%"] for code in codes]
        found: dict[tuple[int, str], int] = {}
        for r in await self.client.execute_kw("maintenance.request", "search_read", [domain],
                                              {"fields": ["name", "equipment_id"], "order": "id asc"}) or []:
            name, eq = r.get("name") or "", (r.get("equipment_id") or [0])[0]
            code = name[1:name.index("]")] if name.startswith("[") and "]" in name else None
            if (eq, code) in keys:
                found.setdefault((eq, code), r["id"])
        return found
