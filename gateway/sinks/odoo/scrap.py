"""Scrap: one validated `stock.scrap` per scrap event, linked to the order being made.

It owns the mapping of `scrap` events: the work center's open work order gives
the manufacturing order and its product; the parts are taken from the
configured location (`scrap_location`, e.g. `WH/Stock`). All scrap events of a
batch are created in one `load` call keyed by their external ids, then each
draft scrap is validated with `action_validate`. When Odoo answers with a
wizard instead of `true` (not enough quantity to scrap), the scrap is not done:
the event goes to the dead letters with Odoo's reason, and a replay after the
stock is fixed finds the same draft scrap by its external id and validates it;
or, with `scrap_mode = "do_scrap"`, the scrap is done anyway (`do_scrap`), as
a person confirming the wizard would, and the warning is logged.
"""
from __future__ import annotations

import logging
from typing import Any

from gateway.errors import PermanentDeliveryError
from gateway.sinks.odoo.batch import Outcome, held_as_suspect, load_rows, xml_id
from gateway.sinks.odoo.masterdata import MasterData
from store.queue import Stored

log = logging.getLogger("linebridge.sinks.odoo")

FIELDS = ["id", "product_id/.id", "scrap_qty", "production_id/.id", "workorder_id/.id",
          "location_id/.id", "origin"]


class ScrapPoster:
    kinds = ("scrap",)

    def __init__(self, client: Any, masterdata: MasterData, sink: str, location: str,
                 force: bool = False) -> None:
        self.client = client
        self.md = masterdata
        self.sink = sink
        self.location = location
        self.force = force

    async def post(self, items: list[Stored], out: Outcome) -> None:
        rows: list[tuple[Stored, list[str]]] = []
        for stored in items:
            if held_as_suspect(stored, out):
                continue
            ev = stored.event
            try:
                code = (ev.get("context") or {}).get("work_center")
                if not code:
                    raise PermanentDeliveryError("scrap event has no work center in its context")
                wo = await self.md.open_workorder(code)
                location = await self.md.lookup("location", self.location)
            except PermanentDeliveryError as exc:
                out.fail(stored, str(exc))
                continue
            rows.append((stored, [xml_id(ev["id"]), str(wo.product_id), str(ev["data"]["quantity"]),
                                  str(wo.production_id), str(wo.id), str(location), f"linebridge {ev['id']}"]))
        if not rows:
            return
        created = await load_rows(self.client, "stock.scrap", FIELDS, rows, out)
        if not created:
            return
        states = {r["id"]: r for r in await self.client.execute_kw(
            "stock.scrap", "read", [list(created.values())], {"fields": ["name", "state"]})}
        for stored, _ in rows:
            rid = created.get(stored.event["id"])
            if rid is None:
                continue
            scrap = states.get(rid, {})
            if scrap.get("state") != "done":
                try:
                    result = await self.client.execute_kw("stock.scrap", "action_validate", [[rid]])
                except PermanentDeliveryError as exc:
                    out.fail(stored, str(exc))
                    continue
                if result is not True and self.force:
                    # configured: scrap what is asked even where Odoo's stock says there is not enough
                    log.warning("event=scrap_forced sink=%s model=stock.scrap id=%d wizard=%r", self.sink, rid,
                                result.get("res_model") if isinstance(result, dict) else result)
                    result = await self.client.execute_kw("stock.scrap", "do_scrap", [[rid]])
                if result is not True:
                    what = result.get("res_model") if isinstance(result, dict) else result
                    name = result.get("name") if isinstance(result, dict) else ""
                    out.fail(stored, f"Odoo did not validate scrap {scrap.get('name', rid)}: it answered "
                                     f"with a wizard ({what}: {name}); the scrap stays draft")
                    continue
            out.receipts[stored.event["id"]] = f"stock.scrap,{rid}"
            log.info("event=delivered sink=%s model=stock.scrap id=%d name=%s qty=%s event_id=%s", self.sink,
                     rid, scrap.get("name"), stored.event["data"]["quantity"], stored.event["id"])
