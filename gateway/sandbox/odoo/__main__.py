"""``python -m gateway.sandbox.odoo``: serve the Odoo sandbox in the foreground.

For rehearsals and manual tests: ``--odoo-version 19`` plays Odoo 19 (JSON-2),
faults are switched with ``curl -X POST localhost:8069/sandbox/faults -d '{"http_status": 503, "count": 3}'``.
"""
from __future__ import annotations

import argparse
import logging

from .server import OdooSandbox
from .versions import SUPPORTED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.sandbox.odoo", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8069)
    parser.add_argument("--data", help="JSON file keeping the database between runs")
    parser.add_argument("--api-key", default="admin", help="the admin's API key (and password)")
    parser.add_argument("--database", default="sandbox")
    parser.add_argument("--odoo-version", default="17.0",
                        help=f"Odoo series to play: {', '.join(f'{m}.0' for m in SUPPORTED)} (default 17.0)")
    parser.add_argument("--with-module", action="append", default=[], metavar="MODULE",
                        help="also install an optional module: quality_control_oca (OCA quality control)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        sandbox = OdooSandbox(host=args.host, port=args.port, data_path=args.data, api_key=args.api_key,
                              database=args.database, version=args.odoo_version, modules=args.with_module)
    except ValueError as exc:
        parser.error(str(exc))
    sandbox.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
