"""The OPC-UA driver: one server's tags as samples, by subscription or by polling.

This module owns the life of one device: connecting (through `connection.py`),
setting the tags up (through `session.py`), turning data change notifications
and poll results into batches of samples with quality, applying deadbands,
noticing a dead session (socket closed, keepalive probe failed, subscription
ended), marking every tag `bad_comm` once, reconnecting with backoff and
resubscribing, keeping health figures, and stopping promptly. It logs one line
per thing that happened. It never writes to a server.
"""
from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from asyncua import ua
from asyncua.client.ua_client import UaClientState

from drivers.base import Backoff, ConfigCollector, Driver, Quality, Sample, Stopped, bounded
from drivers.opcua.config import OpcUaDeviceConfig, parse_device
from drivers.opcua.connection import (ConnectFailure, Identity, classify, discard, open_client,
                                      prepare_identity)
from drivers.opcua.quality import ConversionError, convert_value, quality_for_status, status_text
from drivers.opcua.session import TagSession, loss_text

log = logging.getLogger("linebridge.drivers.opcua")

# asyncua logs every publish at INFO; keep it at WARNING unless someone configured it
_asyncua_log = logging.getLogger("asyncua")
if _asyncua_log.level == logging.NOTSET:
    _asyncua_log.setLevel(logging.WARNING)

T = TypeVar("T")

#: notifications kept while the gateway is busy storing the previous batch
MAX_PENDING = 10_000
#: connecting takes several round trips (endpoints, hello, channel, session, activate)
CONNECT_ROUND_TRIPS = 4
_SESSION_GONE = frozenset({ua.StatusCodes.BadSessionClosed, ua.StatusCodes.BadSessionIdInvalid,
                           ua.StatusCodes.BadSecureChannelClosed,
                           ua.StatusCodes.BadSecureChannelIdInvalid,
                           ua.StatusCodes.BadConnectionClosed, ua.StatusCodes.BadServerHalted,
                           ua.StatusCodes.BadShutdown, ua.StatusCodes.BadNotConnected})


_Stopped = Stopped


class _Overtime(asyncio.TimeoutError):
    """A bounded step (a read, connecting as a whole) took longer than allowed."""


class OpcUaDriver(Driver):
    """Reads the tags of one OPC-UA server (subscriptions, polling as a fallback).

    `samples()` yields a batch per publish (the tags that changed, in
    configuration order) and, for polled tags, a batch per poll. Connection
    trouble marks every tag once; the batches resume after the reconnect.
    """

    type_name = "opcua"
    config: OpcUaDeviceConfig
    #: where generated client certificates go when a device has no `pki_dir`
    #: (`<pki_root>/<device>`); the gateway may point it into its state directory
    pki_root: Path = Path("pki")

    def __init__(self, name: str, config: OpcUaDeviceConfig,
                 clock: Callable[[], float] = time.time, *,
                 backoff: Backoff | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, config, clock)
        self.backoff = backoff or Backoff(initial=0.5, cap=30.0)
        self._monotonic = monotonic
        self._order = {tag: i for i, tag in enumerate(config.tags)}
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._started = False
        self._identity: Identity | None = None
        self._session: TagSession | None = None
        self._token: object | None = None          # identifies the live connection
        self._lost: str | None = None              # why the live connection is gone
        self._pending: collections.deque[tuple[str, ua.DataValue, float]] = collections.deque()
        self._dropped = 0
        self._reported: dict[str, Quality] = {}    # last quality yielded per tag
        self._last_value: dict[str, Any] = {}      # last good value yielded (deadbands)
        self._tag_errors: dict[str, str] = {}      # tag problems already logged
        self._fallback_logged: str | None = None
        self._ever_connected = False
        self._connect_failures = 0
        self._last_failure: str | None = None
        self._next_connect = 0.0
        self._next_poll = 0.0

    # -- contract -----------------------------------------------------------------------

    @classmethod
    def parse_config(cls, section: dict[str, Any], path: str,
                     issues: ConfigCollector) -> OpcUaDeviceConfig | None:
        return parse_device(section, path, issues)

    async def start(self) -> None:
        """Nothing to open yet: connecting happens in `samples()`, never blocking here."""
        self._started = True

    async def stop(self) -> None:
        """End `samples()` promptly, delete the subscription and close; safe to call twice."""
        self._stop.set()
        self._wake.set()
        await self._close(graceful=True)

    async def samples(self) -> AsyncIterator[list[Sample]]:
        if not self._started:
            await self.start()
        try:
            while not self._stop.is_set():
                try:
                    batch = await self._step()
                except _Stopped:
                    return
                except Exception as exc:  # a driver must outlive surprises from the stack
                    log.exception('event=driver_error device=%s error="%s"', self.name, exc)
                    self.health.errors += 1
                    batch = await self._lose(f"unexpected error: {exc!r}")
                if batch:
                    yield batch
        finally:
            await self._close(graceful=True)

    # -- the loop -----------------------------------------------------------------------

    async def _step(self) -> list[Sample]:
        """One turn: connect, or hand over what arrived, or poll, or wait for one of those."""
        session = self._session
        if session is None:
            wait = self._next_connect - self._monotonic()
            if wait > 0:
                await self._sleep(wait)
                return []
            return await self._connect()
        if self._lost is not None:
            return self._drain() + await self._lose(self._lost)
        if self._pending:
            return self._drain()
        now = self._monotonic()
        if session.polled and now >= self._next_poll:
            return await self._poll(session)
        self._wake.clear()  # nothing to do: wait for data, loss, stop or the next poll
        if self._pending or self._lost is not None:
            return []
        timeout = max(self._next_poll - now, 0.0) if session.polled else None
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        if self._stop.is_set():
            raise _Stopped()
        return []

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except asyncio.TimeoutError:
            return
        raise _Stopped()

    # -- connecting ---------------------------------------------------------------------

    async def _connect(self) -> list[Sample]:
        cfg = self.config
        budget = cfg.timeout * CONNECT_ROUND_TRIPS
        token = object()
        self._token, self._lost = token, None

        async def on_lost(exc: Exception) -> None:
            if self._token is token:
                self._mark_lost(loss_text(exc))

        session: TagSession | None = None
        try:
            # checked on every connect: a certificate close to expiry is renewed in time
            self._identity = await self._bounded(
                prepare_identity(cfg, self.name, self.pki_root), 120.0)
            client = await self._bounded(open_client(cfg, self.name, self._identity, on_lost),
                                         budget)
            session = TagSession(client, cfg, self._on_data, self._on_loss)
            self._session = session
            await self._bounded(session.setup(), budget)
            if client.uaclient.state is not UaClientState.CONNECTED:
                raise ConnectionError("the connection dropped while the tags were set up")
        except _Stopped:
            await self._close(graceful=False)
            raise
        except ConnectFailure as failure:
            return await self._connect_failed(failure)
        except _Overtime:
            return await self._connect_failed(ConnectFailure(
                Quality.BAD_TIMEOUT, f"connecting took longer than {budget:g} s"))
        except (OSError, ua.UaError, asyncio.TimeoutError) as exc:
            return await self._connect_failed(classify(exc, cfg, self._identity))
        return self._connected(session)

    def _connected(self, session: TagSession) -> list[Sample]:
        cfg = self.config
        self.health.connected = True
        if self._ever_connected:
            self.health.reconnects += 1
        self._ever_connected = True
        self._connect_failures, self._last_failure = 0, None
        self._next_poll = self._monotonic()
        security = f"{cfg.security_policy}/{cfg.security_mode}"
        log.info("event=connected device=%s endpoint=%s security=%s user=%s mode=%s "
                 "subscribed=%d polled=%d failed=%d reconnects=%d", self.name, cfg.endpoint,
                 security, cfg.username or "anonymous", cfg.mode, len(session.subscribed),
                 len(session.polled), len(session.failed), self.health.reconnects)
        if session.fallback and session.fallback != self._fallback_logged:
            self._fallback_logged = session.fallback
            log.warning('event=poll_fallback device=%s tags=%s poll_interval_s=%g error="%s"',
                        self.name, ",".join(session.polled), cfg.poll_interval, session.fallback)
        ts = self.clock()
        batch = []
        for name, failure in session.failed.items():
            error = self._tag_error(name, failure.reason)
            self._tag_problem(name, failure.quality, error, failure.reason)
            if self._reported.get(name) != failure.quality:
                self._reported[name] = failure.quality
                self._last_value.pop(name, None)
                batch.append(Sample(self.name, name, None, failure.quality, ts, error))
        return self._ordered(batch)

    async def _connect_failed(self, failure: ConnectFailure) -> list[Sample]:
        cfg = self.config
        pending = self._drain()
        await self._close(graceful=False)
        self.health.errors += 1
        self._connect_failures += 1
        delay = self.backoff.next_delay()
        self._next_connect = self._monotonic() + delay
        error = f"device {self.name}: {failure.reason} ({cfg.endpoint})"
        self.health.last_error = error
        level = (logging.WARNING if failure.reason != self._last_failure else logging.INFO)
        self._last_failure = failure.reason
        log.log(level, 'event=connect_failed device=%s endpoint=%s attempt=%d retry_in_s=%.2f '
                'quality=%s error="%s"', self.name, cfg.endpoint, self._connect_failures, delay,
                failure.quality.value, failure.reason)
        return pending + self._mark_all(failure.quality, error)

    async def _lose(self, reason: str) -> list[Sample]:
        """The session is gone: every tag `bad_comm` once, then reconnect with backoff."""
        cfg = self.config
        await self._close(graceful=False)
        self.health.errors += 1
        delay = self.backoff.next_delay()
        self._next_connect = self._monotonic() + delay
        error = f"device {self.name}: {reason}"
        self.health.last_error = error
        log.warning('event=connection_lost device=%s endpoint=%s retry_in_s=%.2f error="%s"',
                    self.name, cfg.endpoint, delay, reason)
        return self._mark_all(Quality.BAD_COMM, error)

    async def _close(self, graceful: bool) -> None:
        session, self._session = self._session, None
        self._token, self._lost = None, None
        self.health.connected = False
        if session is None:
            return
        timeout = min(self.config.timeout, 1.0)
        graceful = graceful and session.client.uaclient.state is UaClientState.CONNECTED
        await session.close(graceful, timeout)
        await discard(session.client, graceful=graceful, timeout=timeout)

    # -- notifications -------------------------------------------------------------------

    def _on_data(self, session: TagSession, name: str, value: ua.DataValue) -> None:
        if session is not self._session:
            return
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            self._dropped += 1
            if self._dropped == 1:
                log.warning("event=notifications_dropped device=%s pending=%d error=\"the "
                            "gateway fell behind; the oldest notifications are dropped\"",
                            self.name, MAX_PENDING)
        self._pending.append((name, value, self.clock()))
        self._wake.set()

    def _on_loss(self, session: TagSession, reason: str) -> None:
        if session is self._session:
            self._mark_lost(reason)

    def _mark_lost(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
        self._wake.set()

    def _drain(self) -> list[Sample]:
        if not self._pending:
            return []
        if self._dropped:
            log.info("event=notifications_dropped device=%s dropped=%d", self.name, self._dropped)
            self._dropped = 0
        pending, self._pending = self._pending, collections.deque()
        self.health.reads += 1
        batch = [s for s in (self._sample(name, value, ts) for name, value, ts in pending) if s]
        return self._ordered(batch)

    # -- polling --------------------------------------------------------------------------

    async def _poll(self, session: TagSession) -> list[Sample]:
        cfg = self.config
        began = self._monotonic()
        names = list(session.polled)
        batch: list[Sample] = []
        try:
            values = await self._bounded(session.read_polled(), cfg.timeout + 0.5)
        except asyncio.TimeoutError:
            self.health.errors += 1
            error = f"device {self.name}: no response within {cfg.timeout:g} s (read of " \
                    f"{len(names)} polled tag(s))"
            self.health.last_error = error
            batch = self._mark_all(Quality.BAD_TIMEOUT, error, names)
        except ua.UaStatusCodeError as exc:
            self.health.errors += 1
            if exc.code & 0xFFFF0000 in _SESSION_GONE:
                self._mark_lost(f"read failed: {status_text(exc.code)}")
            else:
                error = f"device {self.name}: read failed: {status_text(exc.code)}"
                self.health.last_error = error
                batch = self._mark_all(quality_for_status(exc.code), error, names)
        except (OSError, ua.UaError) as exc:
            self.health.errors += 1
            self._mark_lost(f"read failed: {classify(exc, cfg).reason}")
        else:
            self.health.reads += 1
            ts = self.clock()
            batch = [s for s in (self._sample(n, v, ts) for n, v in zip(names, values)) if s]
        now = self._monotonic()
        self.health.poll_latency_ms = round((now - began) * 1000, 3)
        while self._next_poll <= now:
            self._next_poll += cfg.poll_interval
        return self._ordered(batch)

    # -- samples --------------------------------------------------------------------------

    def _sample(self, name: str, value: ua.DataValue, received: float) -> Sample | None:
        """The sample for one value from the server; None when inside the deadband."""
        tag = self.config.tags[name]
        code = value.StatusCode.value if value.StatusCode is not None else 0
        ts = self._timestamp(value, received)
        quality = quality_for_status(code)
        if quality is Quality.GOOD:
            try:
                plain = convert_value(value.Value.Value if value.Value is not None else None,
                                      tag.type)
            except ConversionError as exc:
                quality, reason = exc.quality, str(exc)
            else:
                if self._inside_deadband(name, plain):
                    return None
                self._good(name, plain, ts)
                return Sample(self.name, name, plain, Quality.GOOD, ts, origin=f"node {tag.node.text}")
        else:
            reason = status_text(code)
        error = self._tag_error(name, reason)
        self._tag_problem(name, quality, error, reason)
        self._reported[name] = quality
        self._last_value.pop(name, None)
        return Sample(self.name, name, None, quality, ts, error)

    def _inside_deadband(self, name: str, value: Any) -> bool:
        session = self._session
        band = session.deadbands.get(name) if session is not None else None
        if band is None or self._reported.get(name) is not Quality.GOOD:
            return False
        last = self._last_value.get(name)
        if not _number(value) or not _number(last):
            return False
        return abs(value - last) <= band

    def _good(self, name: str, value: Any, ts: float) -> None:
        self._reported[name] = Quality.GOOD
        self._last_value[name] = value
        self.health.last_good_read = ts
        self.backoff.reset()
        if self._tag_errors.pop(name, None) is not None:
            log.info('event=tag_recovered device=%s tag=%s node="%s"', self.name, name,
                     self.config.tags[name].node.text)

    def _tag_error(self, name: str, reason: str) -> str:
        return f"device {self.name}: tag {name} ({self.config.tags[name].node.text}): {reason}"

    def _tag_problem(self, name: str, quality: Quality, error: str, reason: str) -> None:
        """Log a tag's problem once, when it starts (or changes), not on every value."""
        self.health.last_error = error
        if self._tag_errors.get(name) == reason:
            return
        self._tag_errors[name] = reason
        log.warning('event=tag_failed device=%s tag=%s node="%s" quality=%s error="%s"',
                    self.name, name, self.config.tags[name].node.text, quality.value, reason)

    def _mark_all(self, quality: Quality, error: str,
                  names: list[str] | None = None) -> list[Sample]:
        """One sample per tag whose quality changes to `quality` (device-level trouble)."""
        ts = self.clock()
        batch = []
        for name in (names if names is not None else self.config.tags):
            if self._reported.get(name) != quality:
                self._reported[name] = quality
                self._last_value.pop(name, None)
                batch.append(Sample(self.name, name, None, quality, ts, error))
        return batch

    def _timestamp(self, value: ua.DataValue, received: float) -> float:
        if self.config.timestamps == "source":
            for stamp in (value.SourceTimestamp, value.ServerTimestamp):
                if isinstance(stamp, dt.datetime):
                    aware = stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)
                    return aware.timestamp()
        return received

    def _ordered(self, batch: list[Sample]) -> list[Sample]:
        return sorted(batch, key=lambda s: self._order.get(s.tag, 0))

    # -- helpers --------------------------------------------------------------------------

    async def _bounded(self, awaitable: Awaitable[T], timeout: float) -> T:
        """Await with a timeout that also ends early, with `Stopped`, when stop() is called."""
        return await bounded(awaitable, timeout, self._stop)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
