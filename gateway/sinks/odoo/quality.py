"""Quality results: an OCA inspection where `quality_control_oca` is installed, else a note on the order.

It owns `quality_result` events (a characteristic, the measured value, its
unit and limits, and pass/fail), for the order being made on the event's work
center. Whether OCA's module is installed is read once per connection (master
data). With it, each result becomes a `qc.inspection` of that manufacturing
order (`object_id` `mrp.production,<id>`, whose product the inspection
follows; without `quality_control_mrp_oca` an inspection cannot name an order,
so it references the product and the notes name the order), for the
configured `quality_test` or else the test that asks this characteristic, with
one `qc.inspection.line`: the value, the event's limits (a missing one is
open) and its unit. A batch's inspections and lines are upserted with `load`
under the external ids `linebridge.<event id>` and `..._line_1`, then each
inspection is moved on from the state Odoo shows: `action_todo` (draft),
`action_confirm` (ready: success, or waiting supervisor approval) and
`action_approve` (waiting: failed, the gauge's verdict standing as the
approval). Reading the state before each step makes a retry after a crash,
or after XML-RPC's None fault, finish the job instead of repeating it. Without
the module the result is an internal note in the order's chatter; the note
names the event id and a retry finds it instead of posting twice.
"""
from __future__ import annotations

import html
import logging
from typing import Any

from gateway.errors import PermanentDeliveryError
from gateway.sinks.odoo.batch import Outcome, load_rows, odoo_datetime, xml_id
from gateway.sinks.odoo.masterdata import MasterData, WorkOrder
from gateway.sinks.odoo.protocol import UnknownOutcomeError
from store.queue import Stored

log = logging.getLogger("linebridge.sinks.odoo")

QC_MODULE, MRP_MODULE = "quality_control_oca", "quality_control_mrp_oca"
HEADER = ["id", "object_id", "test/.id", "qty", "date", "internal_notes"]
LINE = ["id", "inspection_id/.id", "name", "question_type", "test_line/.id", "quantitative_value", "min_value",
        "max_value", "uom_id/.id", "test_uom_id/.id"]
NEXT = {"draft": "action_todo", "ready": "action_confirm", "waiting": "action_approve"}
FINAL = ("success", "failed", "canceled")


def note(event: dict[str, Any]) -> str:
    d = event["data"]
    verdict = {True: "PASS", False: "FAIL"}.get(d.get("passed"), str(d.get("result", "")).upper() or "RESULT")
    limits = ""
    if d.get("low") is not None or d.get("high") is not None:
        limits = f" (limits {d.get('low', '-')} .. {d.get('high', '-')})"
    return (f"Quality {verdict}: {d.get('characteristic', 'measurement')} = {d.get('value')} "
            f"{d.get('unit', '')}{limits} on {(event.get('context') or {}).get('machine', '?')} at {event['ts']} "
            f"[Linebridge event {event['id']}]")


def limits(value: float, low: Any, high: Any) -> tuple[float, float]:
    """OCA's min/max for the event's limits; a missing limit is open, so it never fails the value."""
    lo = float(low) if low is not None else min(0.0, value)
    hi = float(high) if high is not None else max(value, lo)
    return lo, hi


class QualityPoster:
    kinds = ("quality_result",)

    def __init__(self, client: Any, masterdata: MasterData, sink: str, test: str | None = None) -> None:
        self.client = client
        self.md = masterdata
        self.sink = sink
        self.test = test
        self._questions: tuple[float, list[dict[str, Any]]] | None = None
        self._units: int | None = None

    async def post(self, items: list[Stored], out: Outcome) -> None:
        if items and await self.md.installed(QC_MODULE):
            await self._inspect(items, out)
        else:
            await self._note(items, out)

    async def _workorder(self, ev: dict[str, Any]) -> WorkOrder:
        code = (ev.get("context") or {}).get("work_center")
        if not code:
            raise PermanentDeliveryError("quality result has no work center in its context")
        return await self.md.open_workorder(code)

    # -- with quality_control_oca: one inspection per result --------------------------------------
    async def _inspect(self, items: list[Stored], out: Outcome) -> None:
        by_order = await self.md.installed(MRP_MODULE)
        headers: list[tuple[Stored, list[str]]] = []
        lines: dict[str, list[str]] = {}
        orders: dict[str, WorkOrder] = {}
        for stored in items:
            ev, d = stored.event, stored.event["data"]
            try:
                wo = await self._workorder(ev)
                if isinstance(d.get("value"), bool) or not isinstance(d.get("value"), (int, float)):
                    raise PermanentDeliveryError(f"quality result without a numeric value: {d.get('value')!r}")
                value, name = float(d["value"]), str(d.get("characteristic") or "measurement")
                test, question = await self._test_for(name)
                uom = await self._uom(question, d.get("unit"))
            except PermanentDeliveryError as exc:
                out.fail(stored, str(exc))
                continue
            lo, hi = limits(value, d.get("low"), d.get("high"))
            target = f"mrp.production,{wo.production_id}" if by_order else f"product.product,{wo.product_id}"
            text = note(ev) if by_order else f"{note(ev)} for {wo.production}"
            headers.append((stored, [xml_id(ev["id"]), target, str(test), str(float(d.get("quantity") or 1.0)),
                                     odoo_datetime(ev["ts"]), text]))
            qid = str(question["id"]) if question else ""
            lines[ev["id"]] = [f"{xml_id(ev['id'])}_line_1", "", name, "quantitative", qid, str(value), str(lo),
                               str(hi), str(uom), str(uom)]
            orders[ev["id"]] = wo
        if not headers:
            return
        created = await load_rows(self.client, "qc.inspection", HEADER, headers, out)
        rows = [(s, [lines[s.event["id"]][0], str(created[s.event["id"]])] + lines[s.event["id"]][2:])
                for s, _ in headers if s.event["id"] in created]
        landed = await load_rows(self.client, "qc.inspection.line", LINE, rows, out) if rows else {}
        todo = {created[s.event["id"]]: s for s, _ in rows if s.event["id"] in landed}
        for iid, (stored, row) in (await self._conclude(todo, out)).items():
            ev = stored.event
            out.receipts[ev["id"]] = f"qc.inspection,{iid}"
            log.info("event=delivered sink=%s model=qc.inspection id=%d name=%s state=%s production=%s event_id=%s",
                     self.sink, iid, row.get("name"), row.get("state"), orders[ev["id"]].production, ev["id"])

    async def _conclude(self, todo: dict[int, Stored], out: Outcome) -> dict[int, tuple[Stored, dict]]:
        """Move each inspection on, from the state Odoo shows, until it is success or failed."""
        pending, final = dict(todo), {}
        for _ in range(len(NEXT) + 1):
            if not pending:
                break
            rows = {r["id"]: r for r in await self.client.execute_kw(
                "qc.inspection", "read", [list(pending)], {"fields": ["name", "state", "success"]})}
            steps: dict[str, list[int]] = {}
            for iid in list(pending):
                row = rows.get(iid)
                if row is None:
                    out.fail(pending.pop(iid), f"qc.inspection {iid} no longer exists in Odoo")
                elif row["state"] in FINAL:
                    final[iid] = (pending.pop(iid), row)
                else:
                    steps.setdefault(NEXT[row["state"]], []).append(iid)
            for method, ids in steps.items():
                await self._call(method, ids, pending, out)
        for iid, stored in pending.items():
            out.fail(stored, f"qc.inspection {iid} did not reach success or failed")
        return final

    async def _call(self, method: str, ids: list[int], pending: dict[int, Stored], out: Outcome) -> None:
        try:
            await self.client.execute_kw("qc.inspection", method, [ids])
        except UnknownOutcomeError:
            return  # it committed; XML-RPC could not carry its None: the next read tells
        except PermanentDeliveryError as exc:
            if len(ids) > 1:  # find the one Odoo refuses; the others go on
                for iid in ids:
                    await self._call(method, [iid], pending, out)
            else:
                out.fail(pending.pop(ids[0]), f"qc.inspection {ids[0]} {method}: {exc}")

    async def _test_for(self, characteristic: str) -> tuple[int, dict[str, Any] | None]:
        """The qc.test to perform and its question asking this characteristic (if any)."""
        key = characteristic.strip().lower()
        if self.test:
            test = await self.md.lookup("qc_test", self.test)
            asked = [q for q in await self._all_questions() if q["test"][0] == test]
            return test, next((q for q in asked if q["name"].strip().lower() == key), None)
        for refresh in (False, True):
            found = [q for q in await self._all_questions(refresh) if q["name"].strip().lower() == key]
            if found:
                return found[0]["test"][0], found[0]
        raise PermanentDeliveryError(f"no quality control test asks {characteristic!r} (qc.test.question.name): "
                                     f"add the question to a test or set quality_test for sink {self.sink!r}")

    async def _all_questions(self, refresh: bool = False) -> list[dict[str, Any]]:
        if refresh or self._questions is None or self.md.clock() - self._questions[0] > self.md.ttl:
            rows = await self.client.execute_kw("qc.test.question", "search_read",
                                                [[["test", "!=", False], ["test.active", "=", True]]],
                                                {"fields": ["name", "test", "uom_id"], "order": "sequence, id"})
            self._questions = (self.md.clock(), rows)
        return self._questions[1]

    async def _uom(self, question: dict[str, Any] | None, unit: Any) -> int:
        """The event's unit by name; without one, the question's unit, else Odoo's Units."""
        if unit:
            return await self.md.lookup("uom", str(unit))
        if question and question.get("uom_id"):
            return question["uom_id"][0]
        if self._units is None:
            _model, self._units = await self.client.execute_kw("ir.model.data", "check_object_reference",
                                                               ["uom", "product_uom_unit"])
        return self._units

    # -- without it: a note in the order's chatter --------------------------------------------------
    async def _note(self, items: list[Stored], out: Outcome) -> None:
        for stored in items:
            ev = stored.event
            try:
                wo = await self._workorder(ev)
                found = await self.client.execute_kw(
                    "mail.message", "search_read",
                    [[["model", "=", "mrp.production"], ["res_id", "=", wo.production_id],
                      ["body", "ilike", ev["id"]]]], {"fields": ["id"], "limit": 1})
                if found:
                    message = found[0]["id"]
                else:
                    message = await self.client.execute_kw(
                        "mrp.production", "message_post", [[wo.production_id]],
                        {"body": html.escape(note(ev)), "message_type": "comment",
                         "subtype_xmlid": "mail.mt_note"})
                    if isinstance(message, list):
                        message = message[0]
            except PermanentDeliveryError as exc:
                out.fail(stored, str(exc))
                continue
            out.receipts[ev["id"]] = f"mail.message,{message}"
            log.info("event=delivered sink=%s model=mail.message id=%s production=%s event_id=%s",
                     self.sink, message, wo.production, ev["id"])
