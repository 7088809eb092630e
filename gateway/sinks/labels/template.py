"""Which labels an event makes, and the values that fill a template's placeholders.

It owns the decision "this event prints these labels": `labels_for` goes
through a sink's actions in order and, for each one that matches, gives the
`Label`s (each with a deterministic id, so a label made again after a restart
is the same label, and an IPP printer can be asked whether it already has it).
A production action with `every = N` counts each machine's good parts; the
counters are returned, not kept here: the sink stores them with its cursor.
`fill` puts an event's values into a field's data and raises `MissingValue`
naming the placeholder when the event does not carry it. It draws nothing
(see `zpl.py` and `pdf.py`).
"""
from __future__ import annotations

import hashlib
import string
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.sinks.labels.config import ActionSpec


class MissingValue(Exception):
    """A template asks for a value the event does not carry: the event is a dead letter naming it."""


@dataclass(frozen=True)
class Label:
    """One label to print: its id, the event that made it, the template and the values that fill it."""

    id: str
    event_id: str
    seq: int
    template: str
    values: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Label":
        return cls(d["id"], d["event_id"], int(d["seq"]), d["template"], dict(d.get("values") or {}))


def values(event: dict[str, Any]) -> dict[str, str]:
    """The placeholders an event fills (only those it carries)."""
    ctx = event.get("context") or {}
    data = event.get("data") or {}
    out: dict[str, str] = {}
    for key in ("product", "lot", "work_order", "machine", "work_center", "operator", "shift"):
        if ctx.get(key) not in (None, ""):
            out[key] = str(ctx[key])
    for key in ("product", "lot", "serial", "work_order"):   # a record or a scan may carry them itself
        if data.get(key) not in (None, "") and key not in out:
            out[key] = str(data[key])
    if event.get("kind") == "scan":
        if data.get("code") is not None:
            out["code"] = str(data["code"])
        if data.get("key") == "lot" and data.get("value"):
            out["lot"] = str(data["value"])
        if data.get("key") is None and data.get("code"):
            out.setdefault("serial", str(data["code"]))
    qty = data.get("quantity", data.get("qty_produced"))
    if isinstance(qty, (int, float)) and not isinstance(qty, bool):
        out["quantity"] = _number(qty)
    ts = str(event.get("ts") or "")
    if len(ts) >= 19:
        out["date"], out["time"], out["datetime"] = ts[:10], ts[11:19], f"{ts[:10]} {ts[11:16]}"
    out["event_id"] = str(event.get("id", ""))
    out["gateway"] = str(event.get("gateway", ""))
    if event.get("seq") is not None:
        out["seq"] = str(event["seq"])
    return out


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def fill(text: str, vals: dict[str, str]) -> str:
    """`text` with its `{placeholders}` replaced; MissingValue names the first one `vals` lacks."""
    out = []
    for literal, name, _spec, _conv in string.Formatter().parse(text):
        out.append(literal)
        if name is None:
            continue
        if name not in vals:
            raise MissingValue(f"the event carries no {name!r} for placeholder {{{name}}}")
        out.append(vals[name])
    return "".join(out)


def labels_for(event: dict[str, Any], seq: int, actions: tuple[ActionSpec, ...],
               counters: dict[str, float]) -> tuple[list[Label], dict[str, float]]:
    """The labels `event` (stored at `seq`) makes, and the good-part counters after it.

    `counters` maps `<action index>/<machine>` to the good parts counted towards
    that action's next label; it is not changed (a copy is returned).
    """
    counters = dict(counters)
    out: list[Label] = []
    kind = event.get("kind")
    data = event.get("data") or {}
    machine = str((event.get("context") or {}).get("machine") or (event.get("source") or {}).get("device") or "")
    base = values(event)
    for i, action in enumerate(actions):
        if action.on != kind or (action.machines and machine not in action.machines):
            continue
        if kind == "scan" and action.key is not None and data.get("key") != action.key:
            continue
        made: list[dict[str, str]] = []
        if kind == "production" and action.every:
            qty = data.get("quantity")
            if not isinstance(qty, (int, float)) or isinstance(qty, bool) or qty <= 0:
                continue
            key = f"{i}/{machine}"
            total = counters.get(key, 0) + qty
            full, counters[key] = divmod(total, action.every)
            made = [dict(base, quantity=str(action.every)) for _ in range(int(full))]
        else:
            made = [dict(base)]
        for vals in made:
            for _ in range(action.copies):
                n = len(out) + 1
                vals = dict(vals, label_no=str(n))
                out.append(Label(label_id(str(event.get("id", "")), i, n), str(event.get("id", "")), seq,
                                 action.template, vals))
    return out, counters


def label_id(event_id: str, action: int, n: int) -> str:
    """`lbl_` + 24 hex digits: the same event, action and number always give the same label."""
    return "lbl_" + hashlib.sha256(f"{event_id}\x1f{action}\x1f{n}".encode()).hexdigest()[:24]


#: the values a template preview is filled with (the console's preview, before any event)
SAMPLE_VALUES = {"product": "PRODUCT-1", "lot": "LOT-0001", "serial": "SN-000001", "quantity": "50",
                 "work_order": "WO/0001", "date": "2026-01-31", "time": "14:05:00", "datetime": "2026-01-31 14:05",
                 "machine": "MACHINE-1", "work_center": "WC-1", "operator": "OPERATOR", "shift": "early",
                 "code": "CODE-1", "event_id": "evt_0000", "seq": "1", "label_no": "1", "gateway": "gateway"}
