"""Run one built real Odoo with the plant's master data until Ctrl-C: for `linebridge bench odoo --url` and by hand.

    LINEBRIDGE_ODOO_PEERS=../shared/peers/odoo .venv/bin/python -m tests.real_odoo.serve 17.0 [--qty 10000]

prints one JSON line (url, database, login, api_key, protocol) once Odoo answers
and the master data is in, then serves until interrupted; the database is
dropped on exit.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
from pathlib import Path

from tests.real_odoo.harness import OdooServer, find_peer
from tests.real_odoo.masterdata import prepare


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.real_odoo.serve")
    p.add_argument("version")
    p.add_argument("--qty", type=float, default=100_000, help="the manufacturing order's quantity")
    p.add_argument("--quality", action="store_true", help="the template with OCA quality_control_oca (17.0)")
    p.add_argument("--option", action="append", default=[], help="an extra odoo-bin option (repeatable)")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix=f"linebridge-odoo-{args.version}-"))
    server = OdooServer(find_peer(args.version), work)
    server.extra_options = list(args.option)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        server.start()
        db = server.new_db(quality=args.quality)
        prepare(db, order_qty=args.qty, quality=args.quality)
        print(json.dumps({**db.sink_config(), "log": str(server.log_path)}), flush=True)
        while not done.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.drop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
