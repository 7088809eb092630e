"""The store's on-disk vocabulary: sequence keys, event classes and quotas (shared by its modules)."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Mapping

CLASSES = ("business", "telemetry")
_SEQ = struct.Struct(">Q")


def k(seq: int) -> bytes:
    """8-byte big-endian key of a sequence number (LMDB sorts them in order)."""
    return _SEQ.pack(seq)


def seq_of(raw: bytes) -> int:
    return _SEQ.unpack(raw)[0]


#: the kinds of the telemetry class: raw samples and the tag sets that name their values
TELEMETRY_KINDS = frozenset({"telemetry", "telemetry_tags"})


def event_class(event: Mapping[str, Any]) -> str:
    """`telemetry` for raw samples (and their tag sets), `business` for every business event."""
    return "telemetry" if event.get("kind") in TELEMETRY_KINDS else "business"


@dataclass(frozen=True)
class Quota:
    """Caps of one class; 0 means no cap."""

    max_events: int = 0
    max_bytes: int = 0
