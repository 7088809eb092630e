"""The MQTT input driver: subscribes to machine topics and yields one batch of samples per message.

This module owns the driver's life: the connection task (connect with a
timeout, wait for the broker's CONNACK, reconnect after a loss or a refusal
with exponential backoff and jitter), the queue of received messages, mapping
each message through its topic's field mapping, acknowledging QoS 1 messages
only after the gateway has taken the batch (the hand-off contract), marking
every tag `stale` once when the connection is lost, health figures, and one
log line per thing that happened. paho-mqtt lives in `link.py`, payload
decoding and conversion in `payload.py`, configuration in `config.py`.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import re
import socket
import ssl
import time
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from drivers.base import Backoff, ConfigCollector, Driver, Quality, Sample, Stopped, bounded
from drivers.mqtt.config import MqttDeviceConfig, TopicConfig, parse_device
from drivers.mqtt.link import Connected, Event, Link, Lost, Message, Refused, SubscribeFailed
from drivers.mqtt.payload import MappedMessage, map_message
from drivers.mqtt.topics import matches

log = logging.getLogger("linebridge.drivers.mqtt")

T = TypeVar("T")

#: a connection that lived this long (or delivered a message) resets the backoff
STABLE_AFTER_S = 10.0
#: messages waiting for the gateway beyond this are dropped and counted (QoS 1 ones are
#: then redelivered by the broker after the next reconnect, as they were never acknowledged)
QUEUE_LIMIT = 10_000
#: remembered (topic, field) problems, for logging each once; cleared when exceeded
_FAILING_LIMIT = 10_000
#: hints for CONNACK refusals, keyed by paho's reason text
_REFUSAL_HINTS = {
    "Not authorized": "check username and password, and the broker's ACL",
    "Bad user name or password": "check username and password",
    "Client identifier not valid": "check client_id",
    "Identifier rejected": "check client_id",
}


_Stopped = Stopped


class _Stale:
    """Marker in the queue: yield one batch with every tag stale."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def default_client_id(device: str) -> str:
    """`linebridge-<host name>-<device>`: stable across restarts, so the broker keeps our session."""
    raw = f"linebridge-{socket.gethostname()}-{device}"
    return re.sub(r"[^A-Za-z0-9_.-]", "-", raw)[:128]


class MqttDriver(Driver):
    """Subscribes to the configured topics of one broker and maps each message to samples.

    `samples()` yields one list per message with one `Sample` per field of the
    topic it arrived on (tag = field name), or one list with every tag `stale`
    when the connection is lost. QoS 1 messages are acknowledged to the broker
    when the generator is resumed after the yield, i.e. once the gateway has
    stored the batch. `stop()` ends the generator promptly.
    """

    type_name = "mqtt"
    config: MqttDeviceConfig

    def __init__(self, name: str, config: MqttDeviceConfig,
                 clock: Callable[[], float] = time.time, *,
                 backoff: Backoff | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, config, clock)
        self.client_id = config.client_id or default_client_id(name)
        self.backoff = backoff or Backoff(initial=config.reconnect_min, cap=config.reconnect_max)
        self._monotonic = monotonic
        self.dropped = 0  # messages dropped because the queue was full
        self._topics = list(config.topics.values())
        self._tags = config.tag_names
        self._queue: collections.deque[Message | _Stale] = collections.deque()
        self._ready: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._link: Link | None = None
        self._ever_connected = False
        self._stale_marked = False
        self._failures = 0  # consecutive failed connection attempts
        self._failing: dict[tuple[str, str], str] = {}  # (topic, field or "*") -> reason

    # -- contract -----------------------------------------------------------------

    @classmethod
    def parse_config(cls, section: dict[str, Any], path: str,
                     issues: ConfigCollector) -> MqttDeviceConfig | None:
        return parse_device(section, path, issues)

    async def start(self) -> None:
        """Start the connection task; connecting never blocks here. Safe to call again."""
        if self._runner is not None and not self._runner.done():
            return
        self._queue.clear()
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._stale_marked = False
        self._failures = 0
        self._runner = asyncio.create_task(self._run(), name=f"mqtt-{self.name}")
        # the connection task is the driver's own; if it dies, samples() raises so that the
        # device's (supervised) task dies with it and is restarted, instead of waiting forever
        self._runner.add_done_callback(lambda _: self._ready.set() if self._ready is not None else None)

    async def stop(self) -> None:
        """End `samples()` promptly and disconnect; safe to call twice."""
        if self._stop is not None:
            self._stop.set()
        self._close_link()
        runner, self._runner = self._runner, None
        if runner is not None and runner is not asyncio.current_task():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    async def samples(self) -> AsyncIterator[list[Sample]]:
        if self._stop is None:  # never started; after stop() only start() starts again
            await self.start()
        assert self._stop is not None
        stop = self._stop
        try:
            while not stop.is_set():
                try:
                    item = await self._next_item(stop)
                except _Stopped:
                    return
                if isinstance(item, _Stale):
                    yield self._stale_batch(item.reason)
                    continue
                batch = self._batch_of(item)
                if batch:
                    yield batch
                # resumed: the gateway has stored this batch, so the broker may forget it
                if not item.link.ack(item.mid, item.qos) and item.qos > 0:
                    log.info('event=ack_skipped device=%s topic=%s mid=%d reason="%s"',
                             self.name, item.topic, item.mid,
                             "connection gone; the clean session forgets it"
                             if self.config.clean_session else
                             "connection gone; the broker delivers it again")
        finally:
            if stop.is_set():
                self._close_link()

    # -- the message queue ----------------------------------------------------------

    async def _next_item(self, stop: asyncio.Event) -> Message | _Stale:
        assert self._ready is not None
        while not self._queue:
            self._raise_if_runner_died()
            self._ready.clear()
            await self._bounded(self._ready.wait(), None)
        if stop.is_set():
            raise _Stopped()
        return self._queue.popleft()

    def _raise_if_runner_died(self) -> None:
        runner = self._runner
        if runner is not None and runner.done() and not runner.cancelled() and runner.exception() is not None:
            raise RuntimeError(f"device {self.name}: the connection task died: "
                               f"{runner.exception()!r}") from runner.exception()

    def _push(self, item: Message | _Stale) -> None:
        if isinstance(item, Message) and len(self._queue) >= QUEUE_LIMIT:
            self.dropped += 1
            self.health.errors += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("event=message_dropped device=%s topic=%s dropped=%d "
                            "error=\"queue full (%d messages waiting for the gateway)\"",
                            self.name, item.topic, self.dropped, QUEUE_LIMIT)
            return
        self._queue.append(item)
        if self._ready is not None:
            self._ready.set()

    def _mark_stale(self, reason: str) -> None:
        """Queue one all-stale batch per disconnection, behind the messages already received."""
        if not self._stale_marked:
            self._stale_marked = True
            self._push(_Stale(reason))

    def _forget_unacked(self, link: Link) -> None:
        """Drop queued QoS 1 messages of a lost persistent-session connection.

        They were never acknowledged, so the broker redelivers them on the next
        connection; keeping them too would hand the gateway every one twice.
        """
        if self.config.clean_session:
            return
        kept = collections.deque(item for item in self._queue
                                 if not (isinstance(item, Message) and item.link is link
                                         and item.qos > 0))
        self._queue = kept

    # -- mapping ----------------------------------------------------------------------

    def _topic_of(self, topic: str) -> TopicConfig | None:
        for cfg in self._topics:
            if matches(cfg.topic, topic):
                return cfg
        return None

    def _batch_of(self, msg: Message) -> list[Sample]:
        try:
            return self._map(msg).samples
        except Exception as exc:  # a message must never end the stream
            log.exception('event=message_error device=%s topic=%s error="%s"',
                          self.name, msg.topic, _quote(repr(exc)))
            self.health.errors += 1
            self.health.last_error = f"device {self.name}: topic {msg.topic}: {exc!r}"
            cfg = self._topic_of(msg.topic)
            names = [f.name for f in cfg.fields] if cfg else []
            return [Sample(self.name, name, None, Quality.BAD_CONFIG, msg.received,
                           self.health.last_error) for name in names]

    def _map(self, msg: Message) -> MappedMessage:
        cfg = self._topic_of(msg.topic)
        if cfg is None:  # a persistent session still subscribed to a removed topic, say
            self.health.errors += 1
            if (msg.topic, "?") not in self._failing:
                self._failing[(msg.topic, "?")] = "unmapped"
                log.warning('event=message_unmapped device=%s topic=%s error="no configured '
                            'topic matches; ignored"', self.name, msg.topic)
            return MappedMessage(samples=[])
        mapped = map_message(self.name, msg.topic, msg.payload, cfg.format, cfg.fields,
                             msg.received, cfg.timestamp_field, cfg.timestamp_unit)
        now = self.clock()
        self.health.reads += 1
        self.health.poll_latency_ms = round(max(now - msg.received, 0.0) * 1000, 3)
        self._report(msg.topic, cfg, mapped)
        if any(s.quality is Quality.GOOD for s in mapped.samples):
            self.health.last_good_read = now
        return mapped

    def _report(self, topic: str, cfg: TopicConfig, mapped: MappedMessage) -> None:
        """Count every problem; log each (topic, field) problem once, and its recovery."""
        if len(self._failing) > _FAILING_LIMIT:
            self._failing.clear()
        names = [f.name for f in cfg.fields]
        if mapped.payload_error is not None:
            self.health.errors += 1
            error = f"device {self.name}: topic {topic}: {mapped.payload_error}"
            self.health.last_error = error
            if (topic, "*") not in self._failing:
                log.warning('event=payload_rejected device=%s topic=%s fields=%s error="%s"',
                            self.name, topic, ",".join(names), _quote(mapped.payload_error))
            self._failing[(topic, "*")] = mapped.payload_error
            return
        if self._failing.pop((topic, "*"), None) is not None:
            log.info("event=payload_recovered device=%s topic=%s", self.name, topic)
        for f in cfg.fields:
            key = (topic, f.name)
            reason = mapped.field_errors.get(f.name)
            if reason is None:
                if self._failing.pop(key, None) is not None:
                    log.info("event=field_recovered device=%s topic=%s field=%s",
                             self.name, topic, f.name)
                continue
            self.health.errors += 1
            self.health.last_error = f"device {self.name}: topic {topic}: field {f.name}: {reason}"
            if key not in self._failing:
                log.warning('event=field_rejected device=%s topic=%s field=%s path=%s '
                            'error="%s"', self.name, topic, f.name, f.path_text or "-",
                            _quote(reason))
            self._failing[key] = reason

    def _stale_batch(self, reason: str) -> list[Sample]:
        ts = self.clock()
        return [Sample(self.name, tag, None, Quality.STALE, ts, reason) for tag in self._tags]

    # -- connection ----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while self._stop is not None and not self._stop.is_set():
                link = Link(self.config, self.client_id, asyncio.get_running_loop(),
                            self._on_event, self.clock)
                self._link = link
                try:
                    reason, refused = await self._connect(link)
                    if reason is None:
                        began = self._monotonic()
                        reason = await self._serve(link)
                        if self._monotonic() - began >= STABLE_AFTER_S or link.delivered:
                            self.backoff.reset()
                        self._connection_lost(link, reason)
                    else:
                        self._connect_failed(link, reason, refused)
                except _Stopped:
                    raise
                except Exception as exc:  # the connection task must outlive surprises of paho
                    log.exception('event=connection_error device=%s error="%s"',
                                  self.name, _quote(repr(exc)))
                    self._connect_failed(link, f"unexpected error: {exc!r}", False)
                await self._bounded(asyncio.sleep(self._next_delay), None)
        except _Stopped:
            pass
        finally:
            self._close_link()

    async def _connect(self, link: Link) -> tuple[str | None, bool]:
        """(None, False) once the broker accepted us; else (why not, whether it refused)."""
        cfg = self.config
        try:
            await self._bounded(link.connect(), cfg.connect_timeout + 1.0)
        except asyncio.TimeoutError:
            return f"connect timed out after {cfg.connect_timeout:g} s", False
        except ssl.SSLError as exc:
            return f"TLS failed: {exc}", False
        except OSError as exc:
            return f"connect failed: {exc.strerror or exc}", False
        except ValueError as exc:  # paho: bad host/port/keepalive, TLS already set...
            return f"connect failed: {exc}", False
        deadline = asyncio.get_running_loop().time() + cfg.connect_timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                event = await self._bounded(link.control.get(), max(remaining, 0.0))
            except asyncio.TimeoutError:
                return (f"no answer from the broker (CONNACK, SUBACK) within "
                        f"{cfg.connect_timeout:g} s"), False
            if not isinstance(event, SubscribeFailed):
                break
            self._subscribe_failed(event)
        if isinstance(event, Refused):
            hint = _REFUSAL_HINTS.get(event.reason)
            return (f"broker refused the connection: {event.reason}"
                    + (f" ({hint})" if hint else "")), True
        if isinstance(event, Lost):
            return f"connection closed before CONNACK: {event.reason}", False
        assert isinstance(event, Connected)
        link.connected = True
        self.health.connected = True
        if self._ever_connected:
            self.health.reconnects += 1
        self._ever_connected = True
        self._stale_marked = False
        self._failures = 0
        log.info("event=connected device=%s host=%s port=%d client_id=%s session_present=%s "
                 "topics=%s reconnects=%d", self.name, cfg.host, cfg.port, self.client_id,
                 str(event.session_present).lower(),
                 ",".join(t.topic for t in self._topics), self.health.reconnects)
        return None, False

    async def _serve(self, link: Link) -> str:
        """Wait on the live connection until it is lost; returns why."""
        while True:
            event = await self._bounded(link.control.get(), None)
            if isinstance(event, SubscribeFailed):
                self._subscribe_failed(event)
            elif isinstance(event, Lost):
                return event.reason

    def _subscribe_failed(self, event: SubscribeFailed) -> None:
        self.health.errors += 1
        self.health.last_error = (f"device {self.name}: broker refused the subscription "
                                  f"to {event.topic}: {event.reason}")
        log.error('event=subscribe_failed device=%s topic=%s error="%s"',
                  self.name, event.topic, _quote(event.reason))

    def _on_event(self, link: Link, event: Event) -> None:
        """Runs in the event loop for every callback of paho's thread."""
        if link is not self._link:
            return  # a closed link's last words
        if isinstance(event, Message):
            link.delivered = True
            self._push(event)
            return
        link.control.put_nowait(event)

    def _connection_lost(self, link: Link, reason: str) -> None:
        cfg = self.config
        link.connected = False
        self._close_link()
        self._forget_unacked(link)
        self.health.connected = False
        self.health.errors += 1
        error = f"device {self.name}: connection to {cfg.host}:{cfg.port} lost: {reason}"
        self.health.last_error = error
        self._next_delay = self.backoff.next_delay()
        log.warning('event=connection_lost device=%s host=%s port=%d retry_in_s=%.2f error="%s"',
                    self.name, cfg.host, cfg.port, self._next_delay, _quote(reason))
        self._mark_stale(error)

    def _connect_failed(self, link: Link, reason: str, refused: bool) -> None:
        cfg = self.config
        self._close_link()
        self._forget_unacked(link)  # a session's backlog may come before the SUBACK
        self.health.connected = False
        self.health.errors += 1
        self._failures += 1
        error = f"device {self.name}: {reason} ({cfg.host}:{cfg.port})"
        self.health.last_error = error
        self._next_delay = self.backoff.next_delay()
        level = logging.WARNING if self._failures == 1 else logging.INFO
        log.log(level, 'event=%s device=%s host=%s port=%d attempt=%d retry_in_s=%.2f error="%s"',
                "connect_refused" if refused else "connect_failed", self.name, cfg.host,
                cfg.port, self._failures, self._next_delay, _quote(reason))
        self._mark_stale(error)

    def _close_link(self) -> None:
        link, self._link = self._link, None
        self.health.connected = False
        if link is not None:
            link.connected = False
            link.close()

    # -- helpers ------------------------------------------------------------------------

    _next_delay: float = 0.0

    async def _bounded(self, awaitable: Awaitable[T], timeout: float | None) -> T:
        """Await with a timeout that also ends early, with `Stopped`, when stop() is called."""
        return await bounded(awaitable, timeout, self._stop)


def _quote(text: str) -> str:
    return text.replace('"', "'")
