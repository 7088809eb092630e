"""The relay's quarantine: envelopes refused at intake, kept with the reason, never posted.

It owns the file `<state>/quarantine.jsonl`: one JSON line per refused message
(`id` a running number, `at`, `topic`, `reason`, and the payload as received,
as text), appended and synced before the broker is acknowledged, so a refusal
is never lost either. A person lists them (`linebridge relay quarantine`),
inspects one, discards some, or accepts one (after registering the gateway's
key, say): accepting hands it back to intake, where it is judged again like
any message. The file is bounded, in entries and in bytes (a forger with
publish rights must not fill the relay's disk): once it holds more than
`limit` entries or `max_bytes`, or after every 1,000 entries, it is cut to the
newest entries that fit half of `max_bytes` and `limit`, and the number
dropped is logged.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from gateway.files import atomic_write

DEFAULT_LIMIT = 100_000
DEFAULT_MAX_BYTES = 256 << 20  # the whole file, at most (about; one batch may pass it before the cut)
PAYLOAD_KEPT = 16 * 1024       # bytes of a payload kept (its size is kept too); an envelope is ~1 KiB
TRIM_EVERY = 1000              # entries added between two looks at the file's length in entries

log = logging.getLogger("linebridge.relay")


class Quarantine:
    def __init__(self, path: Path, limit: int = DEFAULT_LIMIT, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = Path(path)
        self.limit = limit
        self.max_bytes = max_bytes
        self._since_trim = 0
        self._lock = threading.Lock()
        self._next = 1 + max((e["id"] for e in self.entries()), default=0)
        self.count = 0

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's threads and the CLI in another process, one at a time."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path.with_suffix(".lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def entries(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue          # a line torn by a crash mid-write: nothing was acknowledged for it
        return out

    def add(self, items: Iterable[tuple[str, bytes, str]]) -> int:
        """Append (topic, payload, reason) rows and sync; returns how many."""
        rows = []
        with self._locked():
            for topic, payload, reason in items:
                rows.append(json.dumps({"id": self._next, "at": time.time(), "topic": topic, "reason": reason,
                                        "payload": payload[:PAYLOAD_KEPT].decode("utf-8", "replace"),
                                        "size": len(payload)}, ensure_ascii=False))
                self._next += 1
            if not rows:
                return 0
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, ("\n".join(rows) + "\n").encode("utf-8"))
                os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            self.count += len(rows)
            self._since_trim += len(rows)
            if self._since_trim >= TRIM_EVERY or size > self.max_bytes:
                self._since_trim = 0
                self._trim()
        return len(rows)

    def _trim(self) -> None:
        """Keep the newest entries that fit half the bounds when the file is past either (raw lines: no parse)."""
        lines = self.path.read_bytes().splitlines(keepends=True)
        if len(lines) <= self.limit and sum(map(len, lines)) <= self.max_bytes:
            return
        keep: list[bytes] = []
        total = 0
        for line in reversed(lines):
            if len(keep) >= self.limit // 2 or total + len(line) > self.max_bytes // 2:
                break
            keep.append(line)
            total += len(line)
        atomic_write(self.path, b"".join(reversed(keep)))
        log.warning("event=quarantine_trimmed dropped=%d kept=%d bytes=%d", len(lines) - len(keep), len(keep), total)

    def _rewrite(self, entries: list[dict[str, Any]]) -> None:
        atomic_write(self.path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))

    def take(self, ids: set[int]) -> list[dict[str, Any]]:
        """Remove the entries `ids` and return them (for discard or accept)."""
        with self._locked():
            entries = self.entries()
            taken = [e for e in entries if e["id"] in ids]
            if taken:
                self._rewrite([e for e in entries if e["id"] not in ids])
            return taken
