"""The SQL cost of a `qty_producing` write over one large order, read from real Odoo's own request log.

    LINEBRIDGE_ODOO_PEERS=../shared/peers/odoo .venv/bin/python -m tests.real_odoo.qty_cost 17.0 \\
        --parts 10000 --step 5 [--json]

starts the built Odoo of that version with the plant's master data and an
order of `--parts`, then writes the work order's `qty_producing` the way the
Odoo sink does (`mrp.workorder.write`, an absolute count, then the merge of the
order's component move lines, every tenth write, `gateway/sinks/odoo/movelines.py`; `--no-merge`
writes only, as the sink did before) every `--step` parts up to `--parts` (a gateway writing on every poll of a machine
making 3 parts/s writes every ~1.5 parts). Odoo's werkzeug log line of each
request carries its SQL query count, SQL time and Python time; the report
gives them for the first and last writes and at each tenth of the order (the
write's own, and the merge's calls summed), so a cost that grows with the
order shows as a rising column.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway.sinks.odoo.movelines import MERGE_EVERY, MoveLines
from gateway.sinks.odoo.protocol import LazyClient
from tests.real_odoo.harness import OdooServer, find_peer
from tests.real_odoo.masterdata import prepare

# ... "POST /jsonrpc HTTP/1.1" 200 - <queries> <sql s> <python s>
REQUEST = re.compile(r'"POST /jsonrpc HTTP/1\.[01]" 200 - (\d+) ([\d.]+) ([\d.]+)')


def _requests(log: Path, seen: int) -> tuple[int, list[tuple[int, float, float]]]:
    """The log's line count and the (queries, sql s, python s) of each request logged after line `seen`."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    found = []
    for line in lines[seen:]:
        m = REQUEST.search(line)
        if m:
            found.append((int(m.group(1)), float(m.group(2)), float(m.group(3))))
    return len(lines), found


async def _write_as_the_sink(client: Any, lines: MoveLines | None, wo: int, production: int, qty: float,
                             n: int) -> float:
    """The `n`-th count write and, unless `lines` is None, after every MERGE_EVERY-th the move lines' merge;
    the write's wall seconds."""
    t0 = time.perf_counter()
    await client.execute_kw("mrp.workorder", "write", [[wo], {"qty_producing": qty}])
    wall = time.perf_counter() - t0
    if lines is not None and n % MERGE_EVERY == 0:
        await lines.compact(production)
    return wall


def measure(version: str, parts: int, step: int, merge: bool = True) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="linebridge-qty-cost-"))
    server = OdooServer(find_peer(version), work)
    try:
        server.start()
        db = server.new_db()
        plant = prepare(db, order_qty=parts)
        rpc = db.rpc()
        wo = plant.workorders[0]
        cfg = db.sink_config()
        rows: list[dict[str, Any]] = []

        async def run() -> None:
            client = LazyClient(cfg["url"], cfg["database"], cfg["login"], cfg["api_key"], 600.0, cfg["protocol"])
            lines = MoveLines(client, "qty_cost") if merge else None
            try:
                await client.version()
                if lines is not None:
                    await lines.compact(plant.production)  # asks once which fields Odoo has, outside the samples
                seen, _ = _requests(server.log_path, 0)
                marks = {max(step, (parts * i // 10) // step * step) for i in range(1, 11)} | {step, parts // step * step}
                for qty in range(step, parts + 1, step):
                    wall = await _write_as_the_sink(client, lines, wo, plant.production, qty, qty // step)
                    if qty in marks:
                        await asyncio.sleep(0.05)  # the log line is written after the reply
                        seen, reqs = _requests(server.log_path, seen)
                        if reqs:
                            rows.append({"qty": qty, "queries": reqs[0][0], "sql_s": reqs[0][1],
                                         "python_s": reqs[0][2], "wall_s": round(wall, 3),
                                         "merge_calls": len(reqs) - 1, "merge_queries": sum(r[0] for r in reqs[1:]),
                                         "merge_s": round(sum(r[1] + r[2] for r in reqs[1:]), 3)})
                    else:
                        seen, _ = _requests(server.log_path, seen)
            finally:
                await client.close()

        t_all = time.perf_counter()
        asyncio.run(run())
        moves = rpc("stock.move.line", "search_count", [["move_id.raw_material_production_id", "=",
                                                          plant.production]])
        return {"version": version, "parts": parts, "step": step, "writes": parts // step, "merge": merge,
                "seconds": round(time.perf_counter() - t_all, 1), "component_move_lines": moves, "samples": rows}
    finally:
        server.drop_all()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.real_odoo.qty_cost")
    p.add_argument("version")
    p.add_argument("--parts", type=int, default=10_000)
    p.add_argument("--step", type=int, default=5, help="parts between two writes")
    p.add_argument("--no-merge", action="store_true",
                   help="write only, without the sink's merge of the component move lines (the cost as it was)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop Odoo and drop the database on the way out
    r = measure(args.version, args.parts, args.step, merge=not args.no_merge)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"Odoo {r['version']}: {r['writes']} writes of qty_producing up to {r['parts']} in {r['seconds']} s; "
          f"{r['component_move_lines']} component move lines at the end")
    print(f"{'qty':>7} {'queries':>8} {'sql s':>7} {'python s':>9} {'wall s':>7} {'merge queries':>14} {'merge s':>8}")
    for s in r["samples"]:
        print(f"{s['qty']:>7} {s['queries']:>8} {s['sql_s']:>7.3f} {s['python_s']:>9.3f} {s['wall_s']:>7.3f} "
              f"{s['merge_queries']:>14} {s['merge_s']:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
