"""The SQL driver: polls a table or view after a stored watermark, each row taken once.

This module owns the loop of one polled table: each poll it fetches at most
`batch_rows` rows after the watermark (in a thread, with `query_timeout`),
and yields each row's samples as one batch. When the generator is resumed
(the gateway has stored that batch: the hand-off contract in `drivers.base`)
it writes the row's watermark to its StateStore, so at most one row, the one
whose events were just stored, can be read again after a crash. A failing
database gives one bad-quality batch and a reconnect after a capped backoff
with jitter. SQL lives in `source.py`, row conversion in `rows.py`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator, Callable

from drivers.base import Backoff, ConfigCollector, Driver, Quality, Sample, Stopped, bounded
from drivers.sql.config import SqlConfig, parse_device
from drivers.sql.rows import decode_mark, encode_mark, mark_of, row_samples
from drivers.sql.source import Source, SourceError

log = logging.getLogger("linebridge.drivers.sql")

MARK_KEY = "watermark"


def _text(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class SqlDriver(Driver):
    """Polls one table or view; one batch of samples per row, in watermark order."""

    type_name = "sql"

    @staticmethod
    def check_connection(config: SqlConfig) -> list[str]:
        """The connection test a console's Test read adds (blocking: grants, read-only, the select list)."""
        from drivers.sql.source import check
        return check(config)
    config: SqlConfig

    def __init__(self, name: str, config: SqlConfig, clock: Callable[[], float] = time.time) -> None:
        super().__init__(name, config, clock)
        self.source = Source(config)
        self.mark: tuple[Any, ...] | None = None
        self._memory: dict[str, bytes] = {}
        self._stop = asyncio.Event()
        self._started = False
        self.backoff = Backoff(config.reconnect_initial, config.reconnect_cap)
        #: rows by outcome since start
        self.counts: dict[str, int] = {"rows": 0, "bad_cells": 0}

    @classmethod
    def parse_config(cls, section: dict[str, Any], path: str,
                     issues: ConfigCollector) -> SqlConfig | None:
        return parse_device(section, path, issues)

    async def start(self) -> None:
        """Load the stored watermark; no database I/O here."""
        if self._started:
            return
        raw = await self._get(MARK_KEY)
        self.mark = decode_mark(raw) if raw else None
        self._started = True
        log.info("event=sql_start device=%s table=%s watermark=%s", self.name, self.config.table,
                 "-" if self.mark is None else ",".join(_text(v) for v in self.mark))

    async def stop(self) -> None:
        """End `samples()` at its next wait; safe to call twice."""
        self._stop.set()

    async def samples(self) -> AsyncIterator[list[Sample]]:
        await self.start()
        cfg = self.config
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    rows = await self._fetch()
                except Stopped:
                    return
                except SourceError as exc:
                    yield self._failed(str(exc))
                    if await self._sleep(self.backoff.next_delay()):
                        return
                    continue
                if self.backoff.attempt:
                    self.health.reconnects += 1
                    log.info("event=sql_reconnected device=%s after_failures=%d", self.name,
                             self.backoff.attempt)
                self.backoff.reset()
                self.health.connected = True
                self.health.poll_latency_ms = round((time.monotonic() - began) * 1000, 3)
                for row in rows:
                    batch = row_samples(self.name, cfg, row, self.clock())
                    yield batch
                    # resumed: the gateway has durably stored this row's events
                    await self._commit(row, batch)
                    if self._stop.is_set():
                        return
                if len(rows) < cfg.batch_rows and await self._sleep(cfg.poll_interval):
                    return
        finally:
            await asyncio.to_thread(self.source.close)

    async def _fetch(self) -> list[tuple[Any, ...]]:
        grace = self.config.query_timeout + self.config.connect_timeout + 1.0
        try:
            # stop() ends the wait at once; the thread finishes within query_timeout
            return await bounded(asyncio.to_thread(self.source.fetch, self.mark,
                                                   self.config.batch_rows), grace, self._stop)
        except asyncio.TimeoutError:
            await asyncio.to_thread(self.source.close)
            raise SourceError(f"no answer within {grace:g} s") from None

    async def _commit(self, row: tuple[Any, ...], batch: list[Sample]) -> None:
        mark = mark_of(self.config, row)
        await self._put(MARK_KEY, encode_mark(mark))
        self.mark = mark
        self.counts["rows"] += 1
        bad = [s for s in batch if s.quality is not Quality.GOOD]
        self.health.reads += 1
        self.health.last_good_read = self.clock()
        if bad:
            self.counts["bad_cells"] += len(bad)
            self.health.errors += len(bad)
            self.health.last_error = bad[-1].error
            for s in bad:
                log.warning('event=sql_bad_cell device=%s tag=%s error="%s"', self.name, s.tag, s.error)

    def _failed(self, problem: str) -> list[Sample]:
        self.health.connected = False
        self.health.errors += 1
        self.health.last_error = f"device {self.name}: {problem}"
        log.warning('event=sql_unavailable device=%s table=%s attempt=%d error="%s"', self.name,
                    self.config.table, self.backoff.attempt + 1, problem)
        now = self.clock()
        return [Sample(self.name, tag, None, Quality.BAD_COMM, now, problem)
                for tag in self.config.columns]

    async def _sleep(self, seconds: float) -> bool:
        """Wait `seconds`; True when stop() came first."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    async def _get(self, key: str) -> bytes | None:
        if self.state is None:
            return self._memory.get(key)
        return await asyncio.to_thread(self.state.get, key)

    async def _put(self, key: str, value: bytes) -> None:
        if self.state is None:
            self._memory[key] = value
        else:
            await asyncio.to_thread(self.state.put, key, value)
