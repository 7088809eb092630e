"""What one delivery pass produces, and Odoo's `load` used as a batched, idempotent upsert.

`Outcome` collects, per batch, the remote reference of each delivered event
(for the journal), the events given up on with Odoo's message (dead letters)
and the sink state that must move with the cursor. `load_rows` sends many
rows in one `load` call, each row keyed by the event's external id
(`linebridge.<event id>`), so a retry finds the record instead of making a
second one. Odoo rejects a whole `load` for one bad row; the bad rows it names
are dead-lettered and the call is repeated without them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.errors import PermanentDeliveryError
from store.queue import Stored

MODULE = "linebridge"


@dataclass
class Outcome:
    receipts: dict[str, str] = field(default_factory=dict)
    dead: list[tuple[Stored, str]] = field(default_factory=list)
    state: dict[str, bytes] = field(default_factory=dict)

    def fail(self, stored: Stored, error: str) -> None:
        self.dead.append((stored, error))


def held_as_suspect(stored: Stored, out: Outcome) -> bool:
    """A counter jump the rule found implausible waits as a dead letter; a person's replay accepts it."""
    reason = (stored.event.get("data") or {}).get("suspect")
    if not reason or stored.cls == "replay":
        return False
    out.fail(stored, f"implausible counter jump held for a person: {reason}; replay it to post it")
    return True


def xml_id(event_id: str) -> str:
    return f"{MODULE}.{event_id}"


def odoo_datetime(iso: str) -> str:
    """`2026-11-28T03:00:00.123Z` -> `2026-11-28 03:00:00` (UTC, Odoo's only accepted format)."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")


async def load_rows(client: Any, model: str, fields: list[str], rows: list[tuple[Stored, list[str]]],
                    out: Outcome, by_xml_id: bool = False) -> dict[str, int]:
    """Upsert `rows` with one `load` call; returns event id -> record id for the rows that landed.

    `by_xml_id`: keyed by each row's external id (its first column) instead, for events
    that make several records. A bad row fails its event, and the event's other rows
    are left out of the repeated call.
    """
    remaining = list(rows)
    while remaining:
        result = await client.execute_kw(model, "load", [fields, [r for _, r in remaining]],
                                         {"context": {"tz": "UTC"}})
        ids = result.get("ids") if isinstance(result, dict) else None
        if ids:
            if by_xml_id:
                return {row[0]: rid for (_, row), rid in zip(remaining, ids)}
            return {stored.event["id"]: rid for (stored, _), rid in zip(remaining, ids)}
        messages = (result or {}).get("messages") or [] if isinstance(result, dict) else []
        bad: dict[int, str] = {}
        for m in messages:
            if m.get("type") != "error":
                continue
            idx = m.get("record", (m.get("rows") or {}).get("from"))
            text = f"{model}.load: {m.get('message')}" + (f" (field {m['field']})" if m.get("field") else "")
            if isinstance(idx, int) and 0 <= idx < len(remaining):
                bad.setdefault(idx, text)
        if not bad:
            raise PermanentDeliveryError(f"{model}.load refused the batch without naming a row: {messages!r}")
        failed = set()
        for idx, text in bad.items():
            if id(remaining[idx][0]) not in failed:
                out.fail(remaining[idx][0], text)
                failed.add(id(remaining[idx][0]))
        remaining = [r for r in remaining if id(r[0]) not in failed]
    return {}
