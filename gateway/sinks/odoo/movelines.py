"""Keeps a `qty_producing` write's cost flat: the order's component move lines merged after each count write.

Odoo (17: `stock.move._set_quantity_done_prepare_vals`) books a higher
`qty_producing` on each component move by keeping every existing move line at
its quantity and adding one line for the difference, and every later write
rewrites all those lines: one more line per write, so a write's cost grows
with the writes made before it (hundreds of SQL queries more after a few
hundred writes) and an order's total cost is quadratic. After every
`MERGE_EVERY`-th count write of a work order, the lines of each open component move that differ in nothing but their
quantity (same locations, lot, packages, owner, unit, picked) are merged into
the first of them: the others are removed first (their reservation released),
then the first takes their sum, in one `write` of the move. The move's
quantity, reservation and picked state are what they were; a write meets at
most `MERGE_EVERY` lines per move, whatever the order's size. Merging every
write would cost more calls than the lines it saves (and lengthen the count
write a restarted Odoo waits for); every tenth keeps the cost flat.

Where Odoo has no move lines on `stock.move` (the sandbox), nothing is done. A
failure to merge is logged and left: the count itself was written, only the
next write costs more.
"""
from __future__ import annotations

import logging
from typing import Any

from gateway.errors import DeliveryError

log = logging.getLogger("linebridge.sinks.odoo")

#: count writes of a work order between two merges of its order's move lines
MERGE_EVERY = 10
#: what must be equal for two move lines to be one
SAME = ("location_id", "location_dest_id", "lot_id", "package_id", "result_package_id", "owner_id",
        "product_uom_id", "picked")


def _key(line: dict[str, Any]) -> tuple[Any, ...]:
    return tuple((line.get(f) or [False])[0] if isinstance(line.get(f), list) else line.get(f, False) for f in SAME)


class MoveLines:
    """Merges the move lines of one manufacturing order's open component moves."""

    def __init__(self, client: Any, sink: str) -> None:
        self.client = client
        self.sink = sink
        self._fields: set[str] | None = None

    async def _line_fields(self) -> set[str]:
        """The fields of SAME this Odoo's stock.move.line has; empty where moves have no lines."""
        if self._fields is None:
            moves = await self.client.execute_kw("stock.move", "fields_get", [], {"attributes": ["type"]}) or {}
            if "move_line_ids" not in moves:
                self._fields = set()
            else:
                lines = await self.client.execute_kw("stock.move.line", "fields_get", [],
                                                     {"attributes": ["type"]}) or {}
                self._fields = {f for f in SAME if f in lines} | {"quantity"} if "quantity" in lines else set()
        return self._fields

    async def compact(self, production_id: int) -> int:
        """Merge the order's component move lines; how many lines were removed."""
        try:
            return await self._compact(production_id)
        except DeliveryError as exc:
            log.warning("event=move_lines_not_merged sink=%s model=mrp.production id=%d error=%r", self.sink,
                        production_id, str(exc))
            return 0

    async def _compact(self, production_id: int) -> int:
        fields = await self._line_fields()
        if not fields:
            return 0
        moves = await self.client.execute_kw(
            "stock.move", "search_read",
            [[["raw_material_production_id", "=", production_id], ["state", "not in", ["done", "cancel"]]]],
            {"fields": ["move_line_ids"]}) or []
        multi = [m for m in moves if len(m.get("move_line_ids") or []) > 1]
        if not multi:
            return 0
        lines = {r["id"]: r for r in await self.client.execute_kw(
            "stock.move.line", "read", [[i for m in multi for i in m["move_line_ids"]]], {"fields": sorted(fields)})}
        removed = 0
        for move in multi:
            groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
            for lid in sorted(move["move_line_ids"]):
                if lid in lines:
                    groups.setdefault(_key(lines[lid]), []).append(lines[lid])
            commands: list[Any] = []
            for group in groups.values():
                if len(group) < 2:
                    continue
                total = round(sum(float(r["quantity"] or 0.0) for r in group), 6)
                commands += [[2, r["id"]] for r in group[1:]] + [[1, group[0]["id"], {"quantity": total}]]
                removed += len(group) - 1
            if commands:
                await self.client.execute_kw("stock.move", "write", [[move["id"]], {"move_line_ids": commands}])
        if removed:
            log.debug("event=move_lines_merged sink=%s production_id=%d removed=%d", self.sink, production_id,
                      removed)
        return removed
