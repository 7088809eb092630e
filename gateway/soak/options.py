"""The options of `linebridge soak`, kept apart so the CLI can list them without importing the harness."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, required=True,
                   help="length of the run (the final drain may add to it)")
    p.add_argument("--seed", type=int, default=1, help="seeds the plants and the fault schedule (default 1)")
    p.add_argument("--json", action="store_true", help="end with one JSON line on stdout")
    p.add_argument("--machines", type=int, default=3, help="simulated machines (default 3)")
    p.add_argument("--kills", type=int, default=None,
                   help="make the chaos phase long enough for this many kill -9 cycles")
    p.add_argument("--poll", type=float, default=0.02, help="the gateway's poll interval in seconds (default 0.02)")
    p.add_argument("--part-rate", type=float, default=15.0, help="parts per second per machine (default 15)")
    p.add_argument("--tmpfs-mib", type=int, default=3072, help="size of the state directory's tmpfs (default 3072)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where the run's folder goes (default: the system's temp directory)")
    p.add_argument("--keep", action="store_true", help="keep the run's folder (logs, Odoo database) after a success")
