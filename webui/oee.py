"""The console's OEE routes: each machine's running shift, its kept shifts and days, and their CSV.

It owns `/api/v1/oee` (JSON for the OEE page's table and charts) and
`/api/v1/oee/export.csv` (the same records as a spreadsheet). The running
shift comes from the gateway's loop (`Bridge.oee_live`); the closed shifts and
days are read from the store's OEE history (`gateway.oee.history`: a bounded
ring, at most 60 days per machine, never a scan of the events). The figures
themselves are `gateway.oee`'s.
"""
from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, jsonify, request

from gateway.oee import HISTORY_DAYS, csv_text, history
from webui.app import console

oee = Blueprint("oee", __name__)
V1 = "/api/v1"


def _machines(cfg: Any) -> list[str]:
    return sorted(set(cfg.machines) | {d.machine for d in cfg.devices.values() if d.machine})


def _error(status: int, message: str) -> Response:
    resp = jsonify({"error": message, "problems": []})
    resp.status_code = status
    return resp


def _recent(records: list[dict[str, Any]], days: int) -> list[dict[str, Any]]:
    keep = sorted({r["day"] for r in records})[-days:]
    return [r for r in records if r["day"] in keep]


@oee.get(f"{V1}/oee")
def overview() -> Response:
    """Per machine: the running shift so far, then the last `days` days' shifts and days, oldest first."""
    c = console()
    cfg = c.bridge.config
    days = max(1, min(HISTORY_DAYS, request.args.get("days", 14, type=int) or 14))
    names = [s.name for s in cfg.shifts.shifts] if cfg.shifts else []
    live = c.bridge.oee_live() if cfg.shifts else {}
    out = {}
    for machine in _machines(cfg):
        out[machine] = {"running": live.get(machine),
                        "shifts": _recent(history(c.bridge.store.get_state, machine, names, "shift"), days),
                        "days": _recent(history(c.bridge.store.get_state, machine, names, "day"), days)}
    return jsonify({"timezone": cfg.shifts.timezone if cfg.shifts else None, "shift_names": names,
                    "machines": out})


@oee.get(f"{V1}/oee/export.csv")
def export() -> Response:
    """The kept records (and each running shift so far) as CSV; `machine` and `period` narrow it."""
    c = console()
    cfg = c.bridge.config
    machines = _machines(cfg)
    machine, period = request.args.get("machine"), request.args.get("period", "all")
    if machine and machine not in machines:
        return _error(404, f"no machine {machine!r}")
    if period not in ("all", "shift", "day"):
        return _error(400, "period must be all, shift or day")
    names = [s.name for s in cfg.shifts.shifts] if cfg.shifts else []
    live = c.bridge.oee_live() if cfg.shifts and period in ("all", "shift") else {}
    rows: list[dict[str, Any]] = []
    for m in [machine] if machine else machines:
        for p in (("shift", "day") if period == "all" else (period,)):
            rows += history(c.bridge.store.get_state, m, names, p)
        if m in live:
            rows.append(live[m])
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Response(csv_text(rows), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="oee-{machine or "all"}-{stamp}.csv"'})
