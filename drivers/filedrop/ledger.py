"""The record of files already handed to the gateway, kept across restarts.

This module owns remembering, per file drop device, which files were taken:
their name, size, mtime, SHA-256 and row count, stored in the `StateStore` the
gateway lends the driver (blocking calls run in a thread), or in memory when
there is none (bare tests). A file is identified by its name together with the
hash of its content, so a machine that reuses a file name for a new export is
not mistaken for the old one. It does not read, move or parse files.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from drivers.base import StateStore


@dataclass(frozen=True)
class FileRecord:
    """One file taken: what it was and when it was taken (UTC epoch seconds)."""

    name: str
    size: int
    mtime: float
    sha256: str
    rows: int
    taken_at: float


def record_key(name: str, sha256: str) -> str:
    """The state key of a file: fixed length, whatever the file name."""
    digest = hashlib.sha256(f"{name}\0{sha256}".encode("utf-8", "surrogateescape")).hexdigest()
    return f"file/{digest}"


class Ledger:
    """Files already taken, in the driver's `StateStore` or in memory."""

    def __init__(self, state: StateStore | None) -> None:
        self.state = state
        self._memory: dict[str, bytes] = {}

    async def find(self, name: str, sha256: str) -> FileRecord | None:
        raw = await self._get(record_key(name, sha256))
        if raw is None:
            return None
        data: dict[str, Any] = json.loads(raw)
        return FileRecord(**data)

    async def add(self, record: FileRecord) -> None:
        """Remember `record`; with a `StateStore` it is on disk when this returns."""
        value = json.dumps(asdict(record), sort_keys=True).encode()
        key = record_key(record.name, record.sha256)
        if self.state is None:
            self._memory[key] = value
        else:
            await asyncio.to_thread(self.state.put, key, value)

    async def _get(self, key: str) -> bytes | None:
        if self.state is None:
            return self._memory.get(key)
        return await asyncio.to_thread(self.state.get, key)
