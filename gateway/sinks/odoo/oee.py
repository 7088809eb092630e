"""OEE events at the Odoo sink: acknowledged, not posted.

It owns the `oee` kind for this sink. OEE is computed and kept at the edge
(`gateway.oee`) and goes to the plant's broker; Odoo gets no telemetry or
derived figures from the gateway, so each `oee` event is delivered with a
journal receipt saying nothing was written, rather than dead-lettered as an
unknown kind.
"""
from __future__ import annotations

from gateway.sinks.odoo.batch import Outcome
from store.queue import Stored


class OeePoster:
    kinds = ("oee",)

    def __init__(self, sink: str) -> None:
        self.sink = sink

    async def post(self, items: list[Stored], out: Outcome) -> None:
        for stored in items:
            out.receipts[stored.event["id"]] = "OEE stays at the edge; nothing written to Odoo"
