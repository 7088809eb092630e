"""Helpers for the SQL driver tests: a dict StateStore, a driver built from a section, a manual puller."""
from __future__ import annotations

from typing import Any

from drivers.base import ConfigCollector, Sample
from drivers.sql import SqlDriver


class DictState:
    """A StateStore over a plain dict (the gateway's is LMDB-backed and synced)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, key: str, value: bytes) -> None:
        self.data[key] = bytes(value)


def make_driver(state: DictState | None, **section: Any) -> SqlDriver:
    base: dict[str, Any] = {"type": "sql", "table": "production", "key_column": "id",
                            "timestamp_column": "ts", "poll_interval": 0.05,
                            "columns": {"parts": "good_count", "scrap": "scrap_count"},
                            "reconnect_initial": 0.05, "reconnect_cap": 0.2}
    base.update(section)
    issues = ConfigCollector()
    cfg = SqlDriver.parse_config(base, "devices.db", issues)
    assert not issues.issues, [str(i) for i in issues.issues]
    driver = SqlDriver("db", cfg)
    driver.state = state
    return driver


def values(batch: list[Sample]) -> dict[str, Any]:
    return {s.tag: s.value for s in batch}
