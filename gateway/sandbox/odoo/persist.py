"""Saving and loading the sandbox database as one JSON file, atomically.

Owns the file format; durability is `gateway.files.atomic_write`'s, so a crash
(kill -9 included) leaves either the previous or the new complete file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.files import atomic_write

FORMAT = "linebridge.odoo-sandbox/1"


def save(path: Path, database: str, data: dict[str, Any]) -> None:
    """Atomically replace ``path`` with the database's content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps({"format": FORMAT, "database": database, **data}, ensure_ascii=False,
                                  separators=(",", ":")), 0o644)


def load(path: Path) -> dict[str, Any] | None:
    """The saved content, or None when there is no file yet."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    data = json.loads(raw)
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: not an Odoo sandbox database (format {data.get('format')!r})")
    return data
