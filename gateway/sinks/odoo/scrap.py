"""Scrap: validated `stock.scrap` records per scrap event, linked to the order being made.

It owns the mapping of `scrap` events. The work center's open work order gives
the manufacturing order; what is scrapped depends on `scrap_mode`:

- `components` (the default): what an Odoo user records for a bad part during
  production with the order's Scrap button. While an order is in progress its
  finished product is not in stock yet (Odoo offers only the order's open
  components there), so the bad parts' components are scrapped: one scrap per
  open component move, `scrap qty x move demand / order quantity`, taken from
  the move's source location (the order's components location), with
  `production_id` and `workorder_id`, so Odoo books it on the order
  (`raw_material_production_id`) and checks the component's stock, which the
  order reserved;
- `validate`: the finished product, from `scrap_location`; where Odoo answers
  with its insufficient-quantity wizard (no finished stock yet), the event is a
  dead letter with Odoo's reason, and a replay after the stock is fixed finds
  the same draft scrap by its external id and validates it;
- `do_scrap`: the finished product, scrapped even where Odoo's wizard warns
  (`do_scrap`, as a person confirming it would), which drives stock negative.

All scraps of a batch are created in one `load` call keyed by external ids
(`linebridge.<event id>`, `linebridge.<event id>_<component product id>`),
then each draft is validated with `action_validate`; a scrap found done is left
alone, so a retry changes nothing. `product_uom_id` is sent where the model
has it (Odoo 16 requires it).
"""
from __future__ import annotations

import logging
from typing import Any

from gateway.errors import PermanentDeliveryError
from gateway.sinks.odoo.batch import Outcome, held_as_suspect, load_rows, xml_id
from gateway.sinks.odoo.masterdata import MasterData, WorkOrder
from store.queue import Stored

log = logging.getLogger("linebridge.sinks.odoo")

FIELDS = ["id", "product_id/.id", "scrap_qty", "production_id/.id", "workorder_id/.id",
          "location_id/.id", "origin"]
MODES = ("components", "validate", "do_scrap")


class ScrapPoster:
    kinds = ("scrap",)

    def __init__(self, client: Any, masterdata: MasterData, sink: str, location: str,
                 mode: str = "components") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown scrap_mode {mode!r}: one of {', '.join(MODES)}")
        self.client = client
        self.md = masterdata
        self.sink = sink
        self.location = location
        self.mode = mode
        self._fields: dict[str, set[str]] = {}

    async def has_field(self, model: str, name: str) -> bool:
        """Whether `model` has field `name` in this Odoo (asked once per model)."""
        if model not in self._fields:
            self._fields[model] = set(await self.client.execute_kw(model, "fields_get", [],
                                                                   {"attributes": ["type"]}) or {})
        return name in self._fields[model]

    async def components(self, wo: WorkOrder) -> list[dict[str, Any]]:
        """The order's open component moves: product, uom (where known), source location, qty per part."""
        (mo,) = await self.client.execute_kw("mrp.production", "read", [[wo.production_id]],
                                             {"fields": ["move_raw_ids", "product_qty"]}) or [{}]
        fields = ["product_id", "product_uom_qty", "location_id", "state"]
        if await self.has_field("stock.move", "product_uom"):
            fields.append("product_uom")
        moves = await self.client.execute_kw("stock.move", "read", [mo.get("move_raw_ids") or []],
                                             {"fields": fields}) if mo.get("move_raw_ids") else []
        per = float(mo.get("product_qty") or 0.0) or 1.0
        out = []
        for m in sorted(moves, key=lambda m: m["id"]):
            if m.get("state") in ("done", "cancel") or not m.get("product_uom_qty"):
                continue
            out.append({"product": m["product_id"][0], "location": m["location_id"][0],
                        "uom": (m.get("product_uom") or [None])[0], "per_part": float(m["product_uom_qty"]) / per})
        return out

    async def _rows(self, stored: Stored, wo: WorkOrder, uom: bool,
                    cache: dict[int, list[dict[str, Any]]]) -> list[tuple[Stored, list[str]]]:
        ev = stored.event
        qty = float(ev["data"]["quantity"])
        origin = f"linebridge {ev['id']}"
        if self.mode != "components":
            location = await self.md.lookup("location", self.location)
            return [(stored, [xml_id(ev["id"]), str(wo.product_id), str(qty), str(wo.production_id), str(wo.id),
                              str(location), origin] + ([""] if uom else []))]
        if wo.production_id not in cache:
            cache[wo.production_id] = await self.components(wo)
        parts = cache[wo.production_id]
        if not parts:
            raise PermanentDeliveryError(f"manufacturing order {wo.production} has no open component to scrap "
                                         "(scrap_mode = components); scrap the finished product with "
                                         "scrap_mode = validate")
        return [(stored, [xml_id(f"{ev['id']}_{c['product']}"), str(c["product"]),
                          f"{round(qty * c['per_part'], 6):g}", str(wo.production_id), str(wo.id),
                          str(c["location"]), origin]
                 + ([str(c["uom"]) if c["uom"] else ""] if uom else [])) for c in parts]

    async def post(self, items: list[Stored], out: Outcome) -> None:
        rows: list[tuple[Stored, list[str]]] = []
        uom = await self.has_field("stock.scrap", "product_uom_id") if items else False
        cache: dict[int, list[dict[str, Any]]] = {}
        for stored in items:
            if held_as_suspect(stored, out):
                continue
            try:
                code = (stored.event.get("context") or {}).get("work_center")
                if not code:
                    raise PermanentDeliveryError("scrap event has no work center in its context")
                wo = await self.md.open_workorder(code)
                rows += await self._rows(stored, wo, uom, cache)
            except PermanentDeliveryError as exc:
                out.fail(stored, str(exc))
                continue
        if not rows:
            return
        if uom and self.mode != "components":
            rows = await self._finished_uom(rows)
        fields = FIELDS + (["product_uom_id/.id"] if uom else [])
        created = await load_rows(self.client, "stock.scrap", fields, rows, out, by_xml_id=True)
        if not created:
            return
        states = {r["id"]: r for r in await self.client.execute_kw(
            "stock.scrap", "read", [list(created.values())], {"fields": ["name", "state"]})}
        await self._validate(rows, created, states, out)

    async def _finished_uom(self, rows: list[tuple[Stored, list[str]]]) -> list[tuple[Stored, list[str]]]:
        """The finished product's unit of measure in each row (Odoo 16 requires `product_uom_id`)."""
        products = sorted({int(r[1]) for _, r in rows})
        uoms = {p["id"]: p["uom_id"][0] for p in await self.client.execute_kw(
            "product.product", "read", [products], {"fields": ["uom_id"]})}
        return [(s, r[:-1] + [str(uoms.get(int(r[1]), ""))]) for s, r in rows]

    async def _validate(self, rows: list[tuple[Stored, list[str]]], created: dict[str, int],
                        states: dict[int, dict[str, Any]], out: Outcome) -> None:
        """Validate each event's draft scraps; an event is delivered when all of its scraps are done."""
        failed = {id(s) for s, _ in out.dead}
        events: dict[int, tuple[Stored, list[int]]] = {}
        for stored, row in rows:
            rid = created.get(row[0])
            if id(stored) in failed or rid is None:
                continue
            events.setdefault(id(stored), (stored, []))[1].append(rid)
        for stored, rids in events.values():
            error = None
            for rid in rids:
                scrap = states.get(rid, {})
                if scrap.get("state") == "done":
                    continue
                error = await self._validate_one(rid, scrap)
                if error:
                    break
            if error:
                out.fail(stored, error)
                continue
            out.receipts[stored.event["id"]] = "stock.scrap," + ",".join(map(str, rids))
            log.info("event=delivered sink=%s model=stock.scrap ids=%s mode=%s qty=%s event_id=%s", self.sink,
                     ",".join(map(str, rids)), self.mode, stored.event["data"]["quantity"], stored.event["id"])

    async def _validate_one(self, rid: int, scrap: dict[str, Any]) -> str | None:
        """Validate one draft scrap; the reason it stays draft, or None when it is done."""
        try:
            result = await self.client.execute_kw("stock.scrap", "action_validate", [[rid]])
        except PermanentDeliveryError as exc:
            return str(exc)
        if result is not True and self.mode == "do_scrap":
            # configured: scrap what is asked even where Odoo's stock says there is not enough
            log.warning("event=scrap_forced sink=%s model=stock.scrap id=%d wizard=%r", self.sink, rid,
                        result.get("res_model") if isinstance(result, dict) else result)
            result = await self.client.execute_kw("stock.scrap", "do_scrap", [[rid]])
        if result is not True:
            what = result.get("res_model") if isinstance(result, dict) else result
            name = result.get("name") if isinstance(result, dict) else ""
            return (f"Odoo did not validate scrap {scrap.get('name', rid)}: it answered with a wizard "
                    f"({what}: {name}); the scrap stays draft")
        return None
