"""A label sink's durable state: what it has counted, printed, is sending, holds and must reprint.

It owns the one state record (`label/<sink>` in the store's state database)
that moves with the sink's cursor: the good-part counters of `every = N`
actions as of the last acknowledged event; `progress`, how many labels of the
event being printed are on paper; `sending`, the label whose send is under
way (after a crash it is the one label that may or may not be on paper);
`history`, the last printed labels for a reprint (bounded by the sink's
`history`); `reprints`, a person's reprint requests waiting their turn;
`held`, labels a crash left uncertain on a printer that cannot be asked,
waiting for a person. It is plain data with JSON bytes; the sink writes it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

#: held labels kept at most (each one needs a person; beyond this the oldest is dropped, logged)
MAX_HELD = 100
#: reprint requests queued at most
MAX_REPRINTS = 100


def key(sink: str) -> str:
    return f"label/{sink}"


@dataclass
class Ledger:
    counters: dict[str, float] = field(default_factory=dict)
    #: {"seq", "cls", "done"}: labels of that event already printed (or settled)
    progress: dict[str, Any] | None = None
    #: {"label", "where": "event" | "reprint", "index"}: the send in flight
    sending: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    reprints: list[dict[str, Any]] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)
    printed: int = 0

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> "Ledger":
        if not raw:
            return cls()
        d = json.loads(raw)
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def remember(self, entry: dict[str, Any], keep: int) -> None:
        """A printed label joins the history (the oldest leaves beyond `keep`)."""
        self.printed += 1
        if keep <= 0:
            self.history.clear()
            return
        self.history.append(entry)
        del self.history[:-keep]

    def find(self, label_id: str) -> dict[str, Any] | None:
        """A label of the history or the held ones, newest first."""
        for entry in [*reversed(self.held), *reversed(self.history)]:
            if entry["label"]["id"] == label_id:
                return entry
        return None
