"""The file drop driver: CSV exports in a folder, each taken exactly once.

This module owns the loop of one watched folder: each poll it asks the
watcher for finished files, reads and hashes each one, skips (and moves away)
a file its ledger already holds, quarantines a bad file with its reason, and
otherwise yields all of the file's samples as one batch. Only when the
generator is resumed (the gateway has stored the batch: the hand-off contract
in `drivers.base`) does it record the file in the ledger and move it to
`processed/`. It keeps health figures and stops promptly. CSV reading lives in
`csvfile.py`, folder watching and moves in `watcher.py`, the record of taken
files in `ledger.py`, configuration in `config.py`.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Callable

from drivers.base import ConfigCollector, Driver, Quality, Sample
from drivers.filedrop.config import PROCESSED_DIR, QUARANTINE_DIR, FileDropConfig, parse_device
from drivers.filedrop.csvfile import BadFile, Row, read_rows
from drivers.filedrop.ledger import FileRecord, Ledger
from drivers.filedrop.watcher import (Candidate, Watcher, current_signature, move_into,
                                      quarantine_file)

log = logging.getLogger("linebridge.drivers.filedrop")


@dataclass(frozen=True)
class _Loaded:
    """A file read whole: its bytes' hash and, when it is good, its rows."""

    candidate: Candidate
    sha256: str
    rows: list[Row] | None
    bad: BadFile | None


class _Changed(Exception):
    """The file changed or vanished while it was being read; look again next poll."""


class FileDropDriver(Driver):
    """Takes CSV files dropped into a folder; one batch of samples per file.

    Each row gives one good `Sample` per mapped tag (in `columns` order), with
    `source_ts` from the row's timestamp column. A file is taken once: a bad
    file goes to `quarantine/` whole, a good one to `processed/` after its
    batch was handed off.
    """

    type_name = "filedrop"
    config: FileDropConfig

    def __init__(self, name: str, config: FileDropConfig,
                 clock: Callable[[], float] = time.time, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, config, clock)
        self.watcher = Watcher(config, clock, monotonic)
        self.ledger: Ledger | None = None
        self._stop = asyncio.Event()
        self._folder_problem: str | None = None
        self._file_problems: dict[str, str] = {}   # file name -> problem logged once
        #: files by outcome since start
        self.counts: dict[str, int] = {"processed": 0, "quarantined": 0, "duplicates": 0}

    # -- contract -------------------------------------------------------------------------

    @classmethod
    def parse_config(cls, section: dict[str, Any], path: str,
                     issues: ConfigCollector) -> FileDropConfig | None:
        return parse_device(section, path, issues)

    async def start(self) -> None:
        """Bind the ledger to the state the gateway lent (or memory); no file I/O here."""
        if self.ledger is None:
            self.ledger = Ledger(self.state)

    async def stop(self) -> None:
        """End `samples()` at its next wait; a batch in the gateway's hands is still
        committed when the gateway pulls again. Safe to call twice."""
        self._stop.set()

    async def samples(self) -> AsyncIterator[list[Sample]]:
        await self.start()
        while not self._stop.is_set():
            began = time.monotonic()
            candidates = await self._scan()
            for candidate in candidates:
                if self._stop.is_set():
                    return
                batch = await self._take(candidate)
                if batch is None:
                    continue
                loaded, samples = batch
                yield samples
                # resumed: the gateway has durably stored the batch
                await self._commit(loaded)
            self.health.poll_latency_ms = round((time.monotonic() - began) * 1000, 3)
            try:
                await asyncio.wait_for(self._stop.wait(), self.config.poll_interval)
                return
            except asyncio.TimeoutError:
                pass

    # -- one poll ------------------------------------------------------------------------

    async def _scan(self) -> list[Candidate]:
        try:
            candidates = await asyncio.to_thread(self.watcher.scan)
        except OSError as exc:
            problem = f"{type(exc).__name__}: {exc.strerror or exc}"
            self.health.connected = False
            self.health.errors += 1
            self.health.last_error = f"device {self.name}: folder unreadable: {problem}"
            if problem != self._folder_problem:
                log.warning('event=folder_unavailable device=%s directory=%s error="%s"',
                            self.name, self.config.directory, problem)
            self._folder_problem = problem
            return []
        if self._folder_problem is not None:
            log.info("event=folder_available device=%s directory=%s", self.name,
                     self.config.directory)
            self._folder_problem = None
        self.health.connected = True
        return candidates

    async def _take(self, candidate: Candidate) -> tuple[_Loaded, list[Sample]] | None:
        """The batch of a finished file, or None when it was skipped, moved or quarantined."""
        assert self.ledger is not None
        name = candidate.name
        try:
            loaded = await asyncio.to_thread(self._load, candidate)
        except _Changed:
            return None
        except OSError as exc:
            self._file_failed(name, "read_failed", f"{type(exc).__name__}: {exc.strerror or exc}")
            return None
        known = await self.ledger.find(name, loaded.sha256)
        if known is not None:
            # taken before, but still here: the gateway stopped between recording and moving
            self.counts["duplicates"] += 1
            log.info("event=file_already_taken device=%s file=%s sha256=%s taken_at=%s",
                     self.name, name, loaded.sha256[:16], _iso(known.taken_at))
            await self._move(loaded, PROCESSED_DIR)
            return None
        if loaded.bad is not None:
            await self._quarantine(loaded)
            return None
        assert loaded.rows is not None
        if not loaded.rows:
            log.info("event=file_has_no_rows device=%s file=%s", self.name, name)
            await self._commit(loaded)
            return None
        return loaded, self._samples(loaded.rows, name)

    def _load(self, candidate: Candidate) -> _Loaded:
        """Read, hash and parse one file (blocking); `_Changed` if it moved under us."""
        path = candidate.path
        if candidate.signature.size > self.config.max_file_bytes:
            data = b""
            bad: BadFile | None = BadFile(
                f"file too large: {candidate.signature.size} bytes, the limit is "
                f"max_file_mb = {self.config.max_file_mb:g}")
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
            sha = digest.hexdigest()
        else:
            try:
                with open(path, "rb") as fh:
                    data = fh.read(self.config.max_file_bytes + 1)
            except FileNotFoundError:
                raise _Changed() from None
            sha = hashlib.sha256(data).hexdigest()
            bad = None
        if current_signature(path) != candidate.signature or \
                (data and len(data) != candidate.signature.size):
            raise _Changed()
        if bad is not None:
            return _Loaded(candidate, sha, None, bad)
        try:
            rows = read_rows(data, self.config)
        except BadFile as exc:
            return _Loaded(candidate, sha, None, exc)
        return _Loaded(candidate, sha, rows, None)

    def _samples(self, rows: list[Row], file: str) -> list[Sample]:
        """One good sample per mapped cell; its origin names the file, row and column for a person."""
        columns = self.config.columns
        return [Sample(self.name, tag, value, Quality.GOOD, row.ts,
                       origin=f"file {file} row {row.number} column {columns[tag]!r}")
                for row in rows for tag, value in row.values.items()]

    # -- after the hand-off ---------------------------------------------------------------

    async def _commit(self, loaded: _Loaded) -> None:
        """Record the file as taken (durably), then move it to `processed/`."""
        assert self.ledger is not None and loaded.rows is not None
        sig = loaded.candidate.signature
        taken_at = self.clock()
        await self.ledger.add(FileRecord(name=loaded.candidate.name, size=sig.size,
                                         mtime=sig.mtime, sha256=loaded.sha256,
                                         rows=len(loaded.rows), taken_at=taken_at))
        self.counts["processed"] += 1
        if loaded.rows:
            self.health.reads += len(loaded.rows)
            self.health.last_good_read = taken_at
        target = await self._move(loaded, PROCESSED_DIR)
        log.info("event=file_processed device=%s file=%s rows=%d samples=%d sha256=%s "
                 "moved_to=%s", self.name, loaded.candidate.name, len(loaded.rows),
                 len(loaded.rows) * len(self.config.columns), loaded.sha256[:16],
                 target if target is not None else "-")

    async def _move(self, loaded: _Loaded, subdir: str) -> str | None:
        name = loaded.candidate.name
        try:
            target = await asyncio.to_thread(move_into, loaded.candidate.path, subdir)
        except FileNotFoundError:
            self.watcher.forget(name)
            return None  # someone else took it away; nothing left to do
        except OSError as exc:
            self._file_failed(name, "move_failed", f"{type(exc).__name__}: "
                                                   f"{exc.strerror or exc} (into {subdir}/)")
            return None
        self.watcher.forget(name)
        self._file_problems.pop(name, None)
        return f"{subdir}/{target.name}"

    async def _quarantine(self, loaded: _Loaded) -> None:
        bad = loaded.bad
        assert bad is not None
        name = loaded.candidate.name
        sig = loaded.candidate.signature
        reason = (f"file: {name}\nsize: {sig.size} bytes\nmtime: {_iso(sig.mtime)}\n"
                  f"sha256: {loaded.sha256}\nquarantined_at: {_iso(self.clock())}\n"
                  f"device: {self.name}\n"
                  f"row: {_or_dash(bad.row)}\nline: {_or_dash(bad.line)}\n"
                  f"column: {_or_dash(bad.column)}\n"
                  f"value: {_or_dash(None if bad.value is None else repr(bad.value))}\n"
                  f"reason: {bad.reason}\n\n"
                  f"Nothing from this file was passed on. Fix it and drop it into the folder "
                  f"again (under its own name, without .reason.txt).\n")
        try:
            target = await asyncio.to_thread(quarantine_file, loaded.candidate.path,
                                             QUARANTINE_DIR, reason)
        except FileNotFoundError:
            self.watcher.forget(name)
            return
        except OSError as exc:
            self._file_failed(name, "quarantine_failed",
                              f"{type(exc).__name__}: {exc.strerror or exc}")
            return
        self.watcher.forget(name)
        self._file_problems.pop(name, None)
        self.counts["quarantined"] += 1
        self.health.errors += 1
        self.health.last_error = f"device {self.name}: file {name}: {bad}"
        value = "-" if bad.value is None else repr(bad.value[:80])
        log.warning('event=file_quarantined device=%s file=%s row=%s column=%s value=%s '
                    'reason="%s" moved_to=%s/%s', self.name, name, _or_dash(bad.row),
                    _or_dash(bad.column), value, bad.reason, QUARANTINE_DIR, target.name)

    def _file_failed(self, name: str, event: str, problem: str) -> None:
        """A file that cannot be read or moved: count it, log it once until it changes."""
        self.health.errors += 1
        self.health.last_error = f"device {self.name}: file {name}: {problem}"
        if self._file_problems.get(name) != problem:
            self._file_problems[name] = problem
            log.warning('event=%s device=%s file=%s error="%s"', event, self.name, name,
                        problem)


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")
