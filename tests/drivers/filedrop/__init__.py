"""Helpers for the file drop tests: a dict-backed StateStore, configs, and a puller.

`DictState` is the smallest `StateStore` (get/put over a dict) so a test can
restart the driver with the state the first run left. `Puller` pulls batches
in a background task the way the gateway does (the next pull means the last
batch is stored), and `wait_until` waits for a condition with a deadline.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable

from drivers.base import ConfigCollector, Sample
from drivers.filedrop import FileDropDriver


class DictState:
    """A StateStore over a plain dict (the gateway's is LMDB-backed and synced)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, key: str, value: bytes) -> None:
        self.data[key] = bytes(value)


def make_driver(directory: Path, state: DictState | None = None,
                **overrides: Any) -> FileDropDriver:
    section: dict[str, Any] = {
        "type": "filedrop", "directory": str(directory), "stable_seconds": 0.3,
        "poll_interval": 0.05, "timestamp_column": "time",
        "columns": {"parts": "parts", "temp": "temp", "order": "order"},
        "types": {"parts": "int", "temp": "float", "order": "str"}, "machine": "PRESS-02"}
    section.update(overrides)
    issues = ConfigCollector()
    config = FileDropDriver.parse_config(section, "devices.press2", issues)
    assert issues.issues == []
    driver = FileDropDriver("press2", config)
    driver.state = state
    return driver


class Puller:
    """Pulls a driver's batches in the background into `batches`."""

    def __init__(self, driver: FileDropDriver) -> None:
        self.driver = driver
        self.batches: list[list[Sample]] = []
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        async for batch in self.driver.samples():
            self.batches.append(batch)

    async def wait_scans(self, count: int, timeout: float = 8.0) -> None:
        """Wait until the driver has looked at its folder `count` more times."""
        target = self.driver.watcher.scans + count
        await wait_until(lambda: self.driver.watcher.scans >= target, timeout,
                         f"{count} folder scans")

    async def close(self) -> None:
        await self.driver.stop()
        await asyncio.wait_for(self.task, 5)


async def wait_until(condition: Callable[[], Any], timeout: float = 8.0,
                     what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.01)


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


GOOD_CSV = ("time,parts,temp,order,operator\n"
            "2024-03-05T08:00:00,100,21.5,WO-1,ann\n"
            "2024-03-05T08:01:00,101,21.75,WO-1,ann\n")
