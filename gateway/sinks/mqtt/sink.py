"""The MQTT sink worker: reads its cursor, publishes in order, acknowledges on PUBACK.

It owns delivery to one upstream broker: each stored event (the signed
envelope, with its `seq`) is published with QoS 1 on `<prefix>/events/<kind>`,
telemetry on `<prefix>/telemetry/<device>`; an `oee` event also goes, retained,
to `<prefix>/oee/<machine>` (a shift) or `<prefix>/oee/<machine>/day`, so a
fleet monitor finds each machine's latest OEE on subscribing; events of a kind the sink does not
want are acknowledged without being sent. A batch is acknowledged in the store
only up to the first event whose PUBACK has not arrived, in one store
transaction; the rest is published again after a reconnect (MQTT's
at-least-once: a duplicate carries the same event id). Publishing is paced by a
token bucket, so a backlog after an outage is flushed in order at `rate`
messages per second. Events are read through the signature check
(`gateway.sinks.screen`): a tampered one is dead-lettered, never published. It
does not own the connection (see `link.py`).
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from drivers.base import Backoff
from gateway.config import MqttSinkConfig
from gateway.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from gateway.sinks.common import SinkStats, retry_wait, TokenBucket, wait_any
from gateway.signing import PublicKey
from gateway.sinks.mqtt.link import MqttLink
from gateway.sinks.screen import Screen
from store.layout import TELEMETRY_KINDS
from store.queue import Store, Stored

log = logging.getLogger("linebridge.sinks.mqtt")


def envelope_bytes(event: dict[str, Any]) -> bytes:
    """The wire form of a stored envelope: compact JSON, sorted keys, UTF-8."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _level(text: str) -> str:
    """A safe topic level: no wildcards, separators or NUL."""
    cleaned = "".join("_" if ch in "+#/\x00" else ch for ch in str(text))
    return cleaned or "_"


class MqttSink:
    """One MQTT destination fed from its own cursor in the store."""

    def __init__(self, cfg: MqttSinkConfig, store: Store, wake: asyncio.Event | None = None,
                 link: MqttLink | None = None, verify: PublicKey | None = None) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.store = store
        self.wake = wake or asyncio.Event()
        self.link = link or MqttLink(cfg)
        self.bucket = TokenBucket(cfg.rate)
        self.stats = SinkStats()
        #: set by a person's "Retry now": the retry wait ends at once
        self.retry_now = asyncio.Event()
        self.stats.extra = {"url": cfg.url, "skipped": 0, "published": 0, "connects": 0, "in_flight": 0}
        #: the signature check before delivery (`verify`: the gateway's public key)
        self.screen = Screen(self.name, verify, self.stats)

    def topic_for(self, stored: Stored) -> str | None:
        """Where this event goes, or None when this sink does not want it."""
        ev = stored.event
        if ev.get("kind") in TELEMETRY_KINDS:
            if not self.cfg.telemetry:
                return None
            device = (ev.get("source") or {}).get("device", "unknown")
            topic = f"{self.cfg.topic_prefix}/telemetry/{_level(device)}"
            return topic + "/tags" if ev["kind"] == "telemetry_tags" else topic
        if ev.get("kind") not in self.cfg.kinds:
            return None
        return f"{self.cfg.topic_prefix}/events/{_level(ev['kind'])}"

    def latest_topic(self, stored: Stored) -> str | None:
        """The retained topic an `oee` event also goes to: its machine's latest shift (or day)."""
        ev = stored.event
        if ev.get("kind") != "oee":
            return None
        machine = _level((ev.get("context") or {}).get("machine") or (ev.get("source") or {}).get("machine", "_"))
        day = (ev.get("data") or {}).get("period") == "day"
        return f"{self.cfg.topic_prefix}/oee/{machine}" + ("/day" if day else "")

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; the batch in flight is finished first.

        The link (its own task) keeps the connection; while it is down the sink
        waits for it and shows the link's error in its stats.
        """
        backoff = Backoff(initial=0.5, cap=self.cfg.retry_cap)
        try:
            while not stop.is_set():
                self._sync_link_stats()
                if not self.link.connected.is_set():
                    self.stats.state = "disconnected" if self.link.state != "connecting" else "connecting"
                    await wait_any(self.link.connected, stop, timeout=0.5)
                    continue
                batch = await asyncio.to_thread(self.screen.read, self.store, self.cfg.batch_size)
                if not batch:
                    self.stats.settle("idle")
                    await wait_any(self.wake, stop, timeout=1.0)
                    self.wake.clear()
                    continue
                try:
                    await self.deliver(batch)
                    backoff.reset()
                    self.stats.settle("running")
                except DeliveryError as exc:
                    self.stats.retries += 1
                    self.stats.last_error = str(exc)
                    self.stats.state = "retrying"
                    # a lost connection is retried as soon as the link is back;
                    # anything else waits its backoff
                    delay = 0.0 if not self.link.connected.is_set() else backoff.next_delay()
                    log.warning("event=delivery_retry sink=%s first_seq=%d events=%d retry_in=%.1fs error=%r",
                                self.name, batch[0].seq, len(batch), delay, str(exc))
                    if delay:
                        await retry_wait(self.stats, delay, stop, self.retry_now)
        finally:
            self._sync_link_stats()
            self.stats.state = "stopped"

    def _sync_link_stats(self) -> None:
        self.stats.extra.update(connects=self.link.connects, in_flight=self.link.in_flight(),
                                link=self.link.state)
        if not self.link.connected.is_set() and self.link.last_error:
            self.stats.last_error = self.link.last_error

    async def deliver(self, batch: list[Stored]) -> None:
        """Publish one batch in seq order and acknowledge what the broker acknowledged.

        Raises TransientDeliveryError when part of the batch is still unacknowledged
        (that part is published again on the next pass).
        """
        sent: list[tuple[int, asyncio.Future[None]]] = []
        dead: list[tuple[Stored, str]] = []
        stop_at = len(batch)      # first index not even handed to the broker
        failure: str | None = None
        for i, stored in enumerate(batch):
            topic = self.topic_for(stored)
            if topic is None:
                continue
            await self.bucket.take()
            try:
                body = envelope_bytes(stored.event)
                sent.append((i, self.link.publish(topic, body, self.cfg.qos,
                                                  retain=stored.event.get("kind") == "telemetry_tags")))
                latest = self.latest_topic(stored)
                if latest is not None:   # acknowledged only once both are
                    sent.append((i, self.link.publish(latest, body, self.cfg.qos, retain=True)))
            except PermanentDeliveryError as exc:
                dead.append((stored, str(exc)))
            except TransientDeliveryError as exc:
                stop_at, failure = i, str(exc)
                break
        self.stats.extra["in_flight"] = self.link.in_flight()
        if sent:
            await asyncio.wait([f for _, f in sent], timeout=self.cfg.timeout)
        acked_upto = stop_at
        for i, fut in sent:
            if not fut.done() or fut.exception() is not None:
                acked_upto = min(acked_upto, i)
                if failure is None:
                    failure = (str(fut.exception()) if fut.done()
                               else f"no PUBACK within {self.cfg.timeout:.0f}s")
                break
        for _, fut in sent:   # retrieve every outcome, so none is reported as lost
            if fut.done():
                fut.exception()
            else:
                fut.cancel()
        done = batch[:acked_upto]
        if done:
            dead_done = [(s, e) for s, e in dead if s.seq <= done[-1].seq]
            await asyncio.to_thread(self.store.ack, self.name, done, None, dead_done, None)
            published = len({i for i, _ in sent if i < acked_upto})
            self.stats.delivered += published
            if dead_done:
                self.stats.dead(dead_done)
            elif published:
                self.stats.delivered_clean()
            self.stats.extra["published"] += published
            self.stats.extra["skipped"] += sum(1 for s in done if self.topic_for(s) is None)
            self.stats.acknowledged(batch[i] for i in sorted({i for i, _ in sent if i < acked_upto}))
            for stored, error in dead_done:
                log.error("event=dead_letter sink=%s seq=%d event_id=%s kind=%s error=%r", self.name,
                          stored.seq, stored.event["id"], stored.event["kind"], error)
            log.debug("event=delivered sink=%s first_seq=%d last_seq=%d events=%d", self.name,
                      done[0].seq, done[-1].seq, len(done))
        if acked_upto < len(batch):
            raise TransientDeliveryError(f"{len(batch) - acked_upto} event(s) from seq "
                                         f"{batch[acked_upto].seq} unacknowledged: {failure}")
