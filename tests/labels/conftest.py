"""Fixtures of the label tests: a ZPL capture printer, a private CUPS, events in a store."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from gateway.events import iso_utc
from tests.labels.peers import Cups, ZplCapture


@pytest.fixture
def zebra() -> Iterator[ZplCapture]:
    printer = ZplCapture().start()
    yield printer
    printer.stop()


@pytest.fixture
def cups(tmp_path: Path) -> Iterator[Cups]:
    if not Path("/usr/sbin/cupsd").exists() or not shutil.which("lpadmin"):
        pytest.fail("cupsd and lpadmin are needed (tests/setup.sh installs cups-daemon and cups-client)")
    server = Cups(tmp_path / "cups").start()
    yield server
    server.stop()


def production(n: int, qty: int = 1, machine: str = "press1", lot: str = "LOT-7", **context: Any) -> dict:
    """A production event of `qty` good parts, the n-th of its machine."""
    return {"schema": "linebridge.event/1", "id": f"evt_prod_{machine}_{n:06d}", "kind": "production",
            "ts": iso_utc(1_765_000_000 + n), "gateway": "gw1", "source": {"device": machine, "tag": "count"},
            "data": {"quantity": qty, "counter": n, "total": n}, "context":
            {"machine": machine, "product": "WIDGET-9", "lot": lot, "work_order": "WO/0042", **context}}


def finished(n: int, machine: str = "press1") -> dict:
    return {"schema": "linebridge.event/1", "id": f"evt_done_{machine}_{n:06d}", "kind": "workorder_finish",
            "ts": iso_utc(1_765_000_000 + n), "gateway": "gw1", "source": {"device": machine, "tag": "state"},
            "data": {"state": "complete", "quantity": 120}, "context":
            {"machine": machine, "product": "WIDGET-9", "lot": "LOT-7", "work_order": "WO/0042"}}
