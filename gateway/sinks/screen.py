"""The signature check every sink makes before delivery: a tampered event is never sent.

It owns reading a sink's events through that check. Each event (new, replayed
or held) is verified against the gateway's public key before the sink sees it;
one that fails (altered in the store, signature missing or by another key) is
dead-lettered for that sink with the reason `tampered: ...`, in its own store
acknowledgement, logged (`event=tampered`) and counted (`tampered` in the
sink's stats). The sink gets the events before it in the same read, and the
events after it on its next read, so order and cursors stay as they were. Both
sinks use it (`MqttSink`, `OdooSink`); without a key (tests, benches that
store unsigned events) it passes everything through.
"""
from __future__ import annotations

import logging
from typing import Any

from gateway.sinks.common import SinkStats
from gateway.signing import PublicKey, verify
from store.queue import HeldEvent, Store, Stored

log = logging.getLogger("linebridge.sinks.screen")

TAMPERED = "tampered"


class Screen:
    """Verifies what one sink reads; counts in that sink's `stats`."""

    def __init__(self, sink: str, key: PublicKey | None, stats: SinkStats) -> None:
        self.sink = sink
        self.key = key
        self.stats = stats
        stats.extra.setdefault(TAMPERED, 0)

    def _reason(self, event: dict[str, Any]) -> str | None:
        if self.key is None:
            return None
        reason = verify(event, self.key)
        return None if reason is None else f"{TAMPERED}: {reason}"

    def read(self, store: Store, limit: int) -> list[Stored]:
        """`store.read` for this sink, up to (not including) its first tampered event.

        Blocking, like the store: run it in a worker thread. Tampered events at
        the front are dead-lettered first, then the read is repeated.
        """
        while True:
            batch = store.read(self.sink, limit)
            bad: list[tuple[Stored, str]] = []
            for i, stored in enumerate(batch):
                reason = self._reason(stored.event)
                if reason is None:
                    if bad:
                        break
                    continue
                if i > len(bad):   # good events before it: those first, it comes first next time
                    return batch[:i]
                bad.append((_keepable(stored), reason))
            if not bad:
                return batch
            store.ack(self.sink, [s for s, _ in bad], dead=bad)
            self._count(bad)

    def held(self, store: Store) -> list[HeldEvent]:
        """`store.held` for this sink without the tampered ones, which are dead-lettered."""
        held = store.held(self.sink)
        bad = [(_keepable(h.stored), r) for h in held if (r := self._reason(h.stored.event)) is not None]
        if not bad:
            return held
        store.release(self.sink, [s for s, _ in bad], dead=bad)
        self._count(bad)
        gone = {s.seq for s, _ in bad}
        return [h for h in held if h.stored.seq not in gone]

    def _count(self, bad: list[tuple[Stored, str]]) -> None:
        self.stats.extra[TAMPERED] += len(bad)
        self.stats.dead(bad)
        for stored, reason in bad:
            ev = stored.event if isinstance(stored.event, dict) else {}
            log.error("event=tampered sink=%s seq=%d event_id=%s kind=%s action=dead_letter error=%r",
                      self.sink, stored.seq, ev.get("id", "-"), ev.get("kind", "-"), reason)



def _keepable(stored: Stored) -> Stored:
    """The event as a dead letter can keep it: one without a usable id or kind is wrapped."""
    ev = stored.event
    if isinstance(ev, dict) and isinstance(ev.get("id"), str) and isinstance(ev.get("kind"), str):
        return stored
    return Stored(stored.seq, {"id": f"seq-{stored.seq}", "kind": "unknown", "tampered_event": ev}, stored.cls)
