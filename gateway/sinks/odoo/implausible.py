"""Readings a rule refused (`implausible` events): held for a person, never written to Odoo.

It owns the Odoo side of `gateway.rules.plausible`. A refused reading (a
counter at -5, a 23-digit count, an alarm word of 70000) carries no parts and
no code Odoo could take, so it is not posted: on first delivery it becomes a
dead letter whose error says what was read, where, and why it was refused.
A person looks at the machine and discards the letter, or replays it to
accept it: a replay is acknowledged with nothing written (the parts a refused
counter reading may hide are counted from the next good reading, which the
rule measures from the last trusted one), and the journal records who did it.
"""
from __future__ import annotations

import logging

from gateway.sinks.odoo.batch import Outcome
from store.queue import Stored

log = logging.getLogger("linebridge.sinks.odoo")


def letter_error(event: dict) -> str:
    """The dead letter's text: reason, raw value, device/tag, origin."""
    data = event.get("data") or {}
    source = event.get("source") or {}
    where = f"device {source.get('device')} tag {source.get('tag')}"
    if data.get("origin"):
        where += f", {data['origin']}"
    return (f"implausible reading held for a person: {data.get('reason')} (raw {data.get('raw')!r}; {where}; "
            f"rule {data.get('rule')}); nothing was counted - discard it, or replay it to accept it "
            "(a replay writes nothing to Odoo)")


class ImplausiblePoster:
    kinds = ("implausible",)

    def __init__(self, sink: str) -> None:
        self.sink = sink

    async def post(self, items: list[Stored], out: Outcome) -> None:
        for stored in items:
            if stored.cls != "replay":
                out.fail(stored, letter_error(stored.event))
                continue
            out.receipts[stored.event["id"]] = "accepted by a person; nothing written to Odoo"
            log.info("event=implausible_accepted sink=%s seq=%d event_id=%s", self.sink, stored.seq,
                     stored.event["id"])
