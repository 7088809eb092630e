"""Scrap: validated `stock.scrap` records for scrap events, linked to the order being made.

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
  the same draft scrap by its `origin` and validates it;
- `do_scrap`: the finished product, scrapped even where Odoo's wizard warns
  (`do_scrap`, as a person confirming it would), which drives stock negative.

The scrap events of one work order in a batch are merged: one scrap per
component (or one of the finished product) with their quantities summed, so a
backlog costs one `action_validate` per component per batch, not per event
(each one is a stock move Odoo books, the costliest call of the sink). A
merged scrap's external id is its first event's (`linebridge.<event id>`,
`linebridge.<event id>_<component product id>`) and its `origin` names every
event it stands for (`linebridge <id> <id> ...`). Before making scraps, one
search reads back the scraps whose `origin` names an event of the batch: those
events (a retry after a crash between Odoo's commit and the acknowledgement,
a replay) are acknowledged with the scraps found, drafts among them validated,
and only the others make a new scrap. So a retry changes nothing and no event
is scrapped twice, whatever the batch it comes back in. The scraps are created
in one `load` call, then each draft is validated with `action_validate`; a
scrap found done is left alone. `product_uom_id` is sent where the model has
it (Odoo 16 requires it).
"""
from __future__ import annotations

import logging
from typing import Any

from gateway.errors import PermanentDeliveryError
from gateway.sinks.odoo.batch import Outcome, held_as_suspect, load_rows, xml_id
from gateway.sinks.odoo.masterdata import MasterData, WorkOrder
from store.queue import Stored

log = logging.getLogger("linebridge.sinks.odoo")

#: a scrap's `origin`: this prefix and the ids of the events it stands for, space-separated
ORIGIN = "linebridge "
FIELDS = ["id", "product_id/.id", "scrap_qty", "production_id/.id", "workorder_id/.id",
          "location_id/.id", "origin"]
MODES = ("components", "validate", "do_scrap")


def covered(origin: str | None) -> list[str]:
    """The event ids a scrap's `origin` names (none for a scrap the gateway did not make)."""
    if not origin or not origin.startswith(ORIGIN):
        return []
    return origin[len(ORIGIN):].split()


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

    async def _rows(self, unit: list[Stored], wo: WorkOrder, uom: bool,
                    cache: dict[int, list[dict[str, Any]]]) -> list[list[str]]:
        """The rows of one merged scrap: `unit`'s events of one work order, their quantities summed."""
        first = unit[0].event["id"]
        qty = sum(float(s.event["data"]["quantity"]) for s in unit)
        origin = ORIGIN + " ".join(s.event["id"] for s in unit)
        if self.mode != "components":
            location = await self.md.lookup("location", self.location)
            return [[xml_id(first), str(wo.product_id), f"{round(qty, 6):g}", str(wo.production_id), str(wo.id),
                     str(location), origin] + ([""] if uom else [])]
        if wo.production_id not in cache:
            cache[wo.production_id] = await self.components(wo)
        parts = cache[wo.production_id]
        if not parts:
            raise PermanentDeliveryError(f"manufacturing order {wo.production} has no open component to scrap "
                                         "(scrap_mode = components); scrap the finished product with "
                                         "scrap_mode = validate")
        return [[xml_id(f"{first}_{c['product']}"), str(c["product"]), f"{round(qty * c['per_part'], 6):g}",
                 str(wo.production_id), str(wo.id), str(c["location"]), origin]
                + ([str(c["uom"]) if c["uom"] else ""] if uom else []) for c in parts]

    async def covering(self, items: list[Stored]) -> dict[str, list[dict[str, Any]]]:
        """Event id -> the scraps already in Odoo that cover it (their `origin` names it), in one search.

        A crash between Odoo's commit and the acknowledgement, or a replay, brings
        events back that a merged scrap already holds; they are acknowledged with
        it, and only the others make a new one.
        """
        ids = [s.event["id"] for s in items]
        domain: list[Any] = ["|"] * (len(ids) - 1) + [["origin", "like", i] for i in ids]
        found = await self.client.execute_kw("stock.scrap", "search_read", [domain],
                                             {"fields": ["name", "state", "origin"], "order": "id asc"})
        wanted = set(ids)
        out: dict[str, list[dict[str, Any]]] = {}
        for scrap in found or []:
            for eid in covered(scrap.get("origin")):
                if eid in wanted:
                    out.setdefault(eid, []).append(scrap)
        return out

    async def post(self, items: list[Stored], out: Outcome) -> None:
        uom = await self.has_field("stock.scrap", "product_uom_id") if items else False
        cache: dict[int, list[dict[str, Any]]] = {}
        orders: dict[int, tuple[WorkOrder, list[Stored]]] = {}
        for stored in items:
            if held_as_suspect(stored, out):
                continue
            try:
                code = (stored.event.get("context") or {}).get("work_center")
                if not code:
                    raise PermanentDeliveryError("scrap event has no work center in its context")
                wo = await self.md.open_workorder(code)
            except PermanentDeliveryError as exc:
                out.fail(stored, str(exc))
                continue
            orders.setdefault(wo.id, (wo, []))[1].append(stored)
        if not orders:
            return
        found = await self.covering([s for _, unit in orders.values() for s in unit])
        # a unit: the events one set of scraps stands for (found in Odoo, or made now from the rest)
        units: list[tuple[list[Stored], list[int]]] = []
        by_scraps: dict[tuple[int, ...], list[Stored]] = {}
        states: dict[int, dict[str, Any]] = {}
        rows: list[tuple[Stored, list[str]]] = []
        fresh: dict[str, list[Stored]] = {}
        for wo, unit in orders.values():
            rest = []
            for stored in unit:
                scraps = found.get(stored.event["id"])
                if scraps:
                    states.update((r["id"], r) for r in scraps)
                    by_scraps.setdefault(tuple(r["id"] for r in scraps), []).append(stored)
                else:
                    rest.append(stored)
            if not rest:
                continue
            try:
                made = await self._rows(rest, wo, uom, cache)
            except PermanentDeliveryError as exc:
                for stored in rest:
                    out.fail(stored, str(exc))
                continue
            rows += [(rest[0], row) for row in made]
            fresh[rest[0].event["id"]] = rest
        units += [(unit, list(rids)) for rids, unit in by_scraps.items()]
        if rows:
            if uom and self.mode != "components":
                rows = await self._finished_uom(rows)
            fields = FIELDS + (["product_uom_id/.id"] if uom else [])
            created = await load_rows(self.client, "stock.scrap", fields, rows, out, by_xml_id=True)
            for first, error in [(s, e) for s, e in out.dead if s.event["id"] in fresh]:
                for stored in fresh[first.event["id"]][1:]:
                    out.fail(stored, error)
            new: dict[str, list[int]] = {}
            for stored, row in rows:
                if row[0] in created:
                    new.setdefault(stored.event["id"], []).append(created[row[0]])
            if new:
                states.update((r["id"], r) for r in await self.client.execute_kw(
                    "stock.scrap", "read", [[i for rids in new.values() for i in rids]],
                    {"fields": ["name", "state"]}))
            units += [(fresh[first], rids) for first, rids in new.items()]
        await self._validate(units, states, out)

    async def _finished_uom(self, rows: list[tuple[Stored, list[str]]]) -> list[tuple[Stored, list[str]]]:
        """The finished product's unit of measure in each row (Odoo 16 requires `product_uom_id`)."""
        products = sorted({int(r[1]) for _, r in rows})
        uoms = {p["id"]: p["uom_id"][0] for p in await self.client.execute_kw(
            "product.product", "read", [products], {"fields": ["uom_id"]})}
        return [(s, r[:-1] + [str(uoms.get(int(r[1]), ""))]) for s, r in rows]

    async def _validate(self, units: list[tuple[list[Stored], list[int]]], states: dict[int, dict[str, Any]],
                        out: Outcome) -> None:
        """Validate each unit's draft scraps; its events are delivered when all of its scraps are done."""
        for unit, rids in units:
            error = None
            for rid in rids:
                scrap = states.get(rid, {})
                if scrap.get("state") == "done":
                    continue
                error = await self._validate_one(rid, scrap)
                if error:
                    break
            for stored in unit:
                if error:
                    out.fail(stored, error)
                else:
                    out.receipts[stored.event["id"]] = "stock.scrap," + ",".join(map(str, rids))
            if not error:
                log.info("event=delivered sink=%s model=stock.scrap ids=%s mode=%s events=%d qty=%g event_id=%s",
                         self.sink, ",".join(map(str, rids)), self.mode, len(unit),
                         sum(float(s.event["data"]["quantity"]) for s in unit), unit[0].event["id"])

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
