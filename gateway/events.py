"""The canonical business event (`linebridge.event/1`) and its deterministic id.

An event's id is derived from the gateway id, the source (device/tag) and the
source's own sequence key (for a counter: its reset epoch and running total), so
the same signal replayed yields the same id and a destination can recognise a
retry. `seq` is given by the store on append; `sig` by the signing step (a later
issue). Timestamps are UTC, ISO 8601 with a `Z`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

SCHEMA = "linebridge.event/1"

KINDS = frozenset({
    "production", "scrap", "downtime_start", "downtime_end", "alarm", "maintenance_due",
    "consumption", "quality_result", "weight", "scan", "status", "production_summary",
    "workorder_start",
    "workorder_finish",
    "oee",           # a machine's availability, performance and quality over a closed shift or day
    "implausible",   # a machine reading a rule refused: held for a person, never counted
})


def event_id(gateway: str, source: str, key: str) -> str:
    """Deterministic id: `evt_` + 32 hex digits of SHA-256 over gateway, source and key.

    The result is a valid Odoo external-id name (letters, digits, underscore).
    """
    digest = hashlib.sha256("\x1f".join((gateway, source, key)).encode("utf-8")).hexdigest()
    return "evt_" + digest[:32]


def iso_utc(epoch: float) -> str:
    """UTC ISO 8601 with millisecond precision and a `Z`."""
    dt = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass
class Event:
    """One business event, as stored and as sent on the wire (JSON)."""

    id: str
    kind: str
    ts: str
    gateway: str
    source: dict[str, str]
    data: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None
    sig: dict[str, str] | None = None
    schema: str = SCHEMA

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        out = {"schema": self.schema, "id": self.id, "seq": self.seq, "kind": self.kind,
               "ts": self.ts, "gateway": self.gateway, "source": self.source,
               "data": self.data, "context": self.context}
        if self.sig is not None:
            out["sig"] = self.sig
        return out

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Event":
        return cls(id=d["id"], kind=d["kind"], ts=d["ts"], gateway=d["gateway"],
                   source=d["source"], data=d["data"], context=d.get("context") or {},
                   seq=d.get("seq"), sig=d.get("sig"), schema=d.get("schema", SCHEMA))

    @classmethod
    def from_json(cls, raw: bytes) -> "Event":
        return cls.from_dict(json.loads(raw))
