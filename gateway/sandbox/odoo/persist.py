"""Saving and loading the sandbox database as one JSON file, atomically.

Owns the file format and durability: write a temporary file beside the target,
fsync it, ``os.replace`` it over the old one and fsync the directory, so a
crash (kill -9 included) leaves either the previous or the new complete file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FORMAT = "linebridge.odoo-sandbox/1"


def save(path: Path, database: str, data: dict[str, Any]) -> None:
    """Atomically replace ``path`` with the database's content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = json.dumps({"format": FORMAT, "database": database, **data}, ensure_ascii=False,
                         separators=(",", ":")).encode()
    with open(tmp, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
