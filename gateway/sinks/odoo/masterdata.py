"""The Odoo sink's master-data cache: work centers, equipment, products, losses, locations, open orders.

It owns lookups by the plant's own keys (work center `code`, equipment
`serial_no`, product `default_code`, loss reason name, location full name,
quality test and unit of measure names), each table fetched whole in one call
and refreshed after `ttl` seconds, the open work order of each work center (in
progress first), refreshed more often, and which Odoo modules are installed
(read once, until `forget`). A missing key is a permanent error for the event
that needs it, with a message a person can act on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from gateway.errors import PermanentDeliveryError

OPEN_STATES = ["progress", "ready", "waiting", "pending"]


@dataclass(frozen=True)
class WorkOrder:
    id: int
    name: str
    production_id: int
    production: str
    product_id: int
    qty_production: float = 0.0
    #: minutes Odoo expects the order to take (from its operation's cycle time and the work center's
    #: setup times and efficiency): over `qty_production`, the OEE's ideal cycle
    duration_expected: float = 0.0


_TABLES = {
    "workcenter": ("mrp.workcenter", "code", "work center with code"),
    "equipment": ("maintenance.equipment", "serial_no", "equipment with serial number"),
    "product": ("product.product", "default_code", "product with internal reference"),
    "loss": ("mrp.workcenter.productivity.loss", "name", "loss reason"),
    "location": ("stock.location", "complete_name", "stock location"),
    "qc_test": ("qc.test", "name", "quality control test"),
    "uom": ("uom.uom", "name", "unit of measure"),
}


class NoOpenWorkorder(PermanentDeliveryError):
    """The work center exists but has no open work order (now)."""


class MasterData:
    def __init__(self, client: Any, ttl: float = 300.0, orders_ttl: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.ttl = ttl
        self.orders_ttl = orders_ttl
        self.clock = clock
        self._tables: dict[str, tuple[float, dict[str, int]]] = {}
        self._orders: dict[int, tuple[float, WorkOrder | None]] = {}
        self._installed: frozenset[str] | None = None

    async def lookup(self, table: str, key: str) -> int:
        """The record id behind the plant's key; refreshes the table once when the key is unknown."""
        model, field, what = _TABLES[table]
        cached = self._tables.get(table)
        if cached is None or self.clock() - cached[0] > self.ttl or key not in cached[1]:
            rows = await self.client.execute_kw(model, "search_read", [[[field, "!=", False]]],
                                                {"fields": [field]})
            self._tables[table] = (self.clock(), {r[field]: r["id"] for r in rows if r.get(field)})
        ids = self._tables[table][1]
        if key not in ids:
            raise PermanentDeliveryError(f"no {what} {key!r} in Odoo ({model}.{field})")
        return ids[key]

    async def open_workorder(self, workcenter_code: str) -> WorkOrder:
        wc = await self.lookup("workcenter", workcenter_code)
        cached = self._orders.get(wc)
        if cached is None or self.clock() - cached[0] > self.orders_ttl:
            rows = await self.client.execute_kw(
                "mrp.workorder", "search_read",
                [[["workcenter_id", "=", wc], ["state", "in", OPEN_STATES]]],
                {"fields": ["name", "state", "production_id", "product_id", "qty_production", "duration_expected"],
                 "order": "id asc"})
            rows.sort(key=lambda r: (OPEN_STATES.index(r["state"]), r["id"]))
            wo = None
            if rows:
                r = rows[0]
                prod = r.get("production_id") or [0, ""]
                product = r.get("product_id") or [0, ""]
                wo = WorkOrder(r["id"], r["name"], prod[0], prod[1], product[0],
                               float(r.get("qty_production") or 0.0), float(r.get("duration_expected") or 0.0))
            self._orders[wc] = (self.clock(), wo)
            cached = self._orders[wc]
        if cached[1] is None:
            raise NoOpenWorkorder(f"no open work order on work center {workcenter_code!r} "
                                         f"(states {', '.join(OPEN_STATES)})")
        return cached[1]

    def cached_workorder(self, workcenter_code: str) -> tuple[WorkOrder | None, float | None]:
        """(the open work order last resolved for a work center, how many seconds ago), without asking
        Odoo; (None, None) when it has not been resolved since the cache was last dropped."""
        table = self._tables.get("workcenter")
        wc = table[1].get(workcenter_code) if table else None
        cached = self._orders.get(wc) if wc is not None else None
        if cached is None:
            return None, None
        return cached[1], self.clock() - cached[0]

    async def installed(self, module: str) -> bool:
        """Whether an Odoo module is installed; the list is read once and kept until `forget`."""
        if self._installed is None:
            rows = await self.client.execute_kw("ir.module.module", "search_read",
                                                [[["state", "=", "installed"]]], {"fields": ["name"]})
            self._installed = frozenset(r["name"] for r in rows)
        return module in self._installed

    def forget(self) -> None:
        """Drop everything cached (after an error that may mean master data changed)."""
        self._tables.clear()
        self._orders.clear()
        self._installed = None
