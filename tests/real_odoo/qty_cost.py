"""The SQL cost of a `qty_producing` write over one large order, read from real Odoo's own request log.

    LINEBRIDGE_ODOO_PEERS=../shared/peers/odoo .venv/bin/python -m tests.real_odoo.qty_cost 17.0 \\
        --parts 10000 --step 5 [--json]

starts the built Odoo of that version with the plant's master data and an
order of `--parts`, then writes the work order's `qty_producing` the way the
Odoo sink does (`mrp.workorder.write`, an absolute count over JSON-RPC) every
`--step` parts up to `--parts` (a gateway writing on every poll of a machine
making 3 parts/s writes every ~1.5 parts). Odoo's werkzeug log line of each
request carries its SQL query count, SQL time and Python time; the report
gives them for the first and last writes and at each tenth of the order, so
a cost that grows with the order shows as a rising column.
"""
from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.real_odoo.harness import OdooServer, find_peer
from tests.real_odoo.masterdata import prepare

# ... "POST /jsonrpc HTTP/1.1" 200 - <queries> <sql s> <python s>
REQUEST = re.compile(r'"POST /jsonrpc HTTP/1\.[01]" 200 - (\d+) ([\d.]+) ([\d.]+)')


def _last_request(log: Path, seen: int) -> tuple[int, tuple[int, float, float] | None]:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    found = None
    for line in lines[seen:]:
        m = REQUEST.search(line)
        if m:
            found = (int(m.group(1)), float(m.group(2)), float(m.group(3)))
    return len(lines), found


def measure(version: str, parts: int, step: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="linebridge-qty-cost-"))
    server = OdooServer(find_peer(version), work)
    try:
        server.start()
        db = server.new_db()
        plant = prepare(db, order_qty=parts)
        rpc = db.rpc()
        wo = plant.workorders[0]
        seen, _ = _last_request(server.log_path, 0)
        rows: list[dict[str, Any]] = []
        marks = {max(step, (parts * i // 10) // step * step) for i in range(1, 11)} | {step, parts // step * step}
        t_all = time.perf_counter()
        for qty in range(step, parts + 1, step):
            t0 = time.perf_counter()
            rpc("mrp.workorder", "write", [wo], {"qty_producing": qty})
            wall = time.perf_counter() - t0
            if qty in marks:
                time.sleep(0.05)  # the log line is written after the reply
                seen, req = _last_request(server.log_path, seen)
                if req:
                    rows.append({"qty": qty, "queries": req[0], "sql_s": req[1], "python_s": req[2],
                                 "wall_s": round(wall, 3)})
        moves = rpc("stock.move.line", "search_count", [["move_id.raw_material_production_id", "=",
                                                          plant.production]])
        return {"version": version, "parts": parts, "step": step, "writes": parts // step,
                "seconds": round(time.perf_counter() - t_all, 1), "component_move_lines": moves, "samples": rows}
    finally:
        server.drop_all()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.real_odoo.qty_cost")
    p.add_argument("version")
    p.add_argument("--parts", type=int, default=10_000)
    p.add_argument("--step", type=int, default=5, help="parts between two writes")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop Odoo and drop the database on the way out
    r = measure(args.version, args.parts, args.step)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"Odoo {r['version']}: {r['writes']} writes of qty_producing up to {r['parts']} in {r['seconds']} s; "
          f"{r['component_move_lines']} component move lines at the end")
    print(f"{'qty':>7} {'queries':>8} {'sql s':>7} {'python s':>9} {'wall s':>7}")
    for s in r["samples"]:
        print(f"{s['qty']:>7} {s['queries']:>8} {s['sql_s']:>7.3f} {s['python_s']:>9.3f} {s['wall_s']:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
