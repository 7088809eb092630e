"""The relay's broker session: a persistent, shared subscription with manual acknowledgement.

It owns the MQTT 5 connection (paho-mqtt 2): `clean_start` off and a session
expiry, so the broker keeps this relay's subscription and its unacknowledged
messages across a disconnect; the shared subscription `$share/<group>/<filter>`
at QoS 1, so the relays of a group split the messages; and manual
acknowledgement (`manual_ack_set`): a message is PUBACKed only when intake
calls `ack` after it is stored (or quarantined) durably. Until then the
broker holds it and sends it again after a reconnect. paho's network thread
reconnects by itself with a capped backoff; each message is handed to the
asyncio loop as a `Message`. It does not own judging or storing.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import threading
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.relay.config import BrokerConfig

log = logging.getLogger("linebridge.relay")


@dataclass(frozen=True)
class Message:
    mid: int
    qos: int
    topic: str
    payload: bytes
    gen: int          # the connection it came on: an ack on a later one is not sent (the broker resends)


class Subscriber:
    """Messages into `queue`; `ack(message)` once it is safe."""

    def __init__(self, cfg: BrokerConfig, queue: "asyncio.Queue[Message]", loop: asyncio.AbstractEventLoop,
                 receive_maximum: int = 1000) -> None:
        self.cfg = cfg
        self._arrived: collections.deque[Message] = collections.deque()
        self._scheduled = False
        self.receive_maximum = max(1, min(65535, receive_maximum))
        self.queue = queue
        self.loop = loop
        self.connected = threading.Event()
        self.subscribed = asyncio.Event()
        self.connects = 0
        self.gen = 0
        self.last_error: str | None = None
        link = cfg.link
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=link.client_id, protocol=mqtt.MQTTv5)
        client.connect_timeout = link.timeout
        client.manual_ack_set(True)
        client.enable_logger(logging.getLogger("paho.relay"))   # quiet unless --log-level DEBUG
        if link.username is not None:
            client.username_pw_set(link.username, link.password)
        if link.tls:
            ctx = ssl.create_default_context(cafile=link.ca_file)
            if link.certfile:
                ctx.load_cert_chain(link.certfile, link.keyfile)
            client.tls_set_context(ctx)
        # paho's own reconnect: exponential from 1 s, capped
        client.reconnect_delay_set(min_delay=1, max_delay=max(2, int(link.retry_cap)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = lambda c, u: log.warning("event=relay_connect_failed url=%s reason=%r",
                                                          self.cfg.link.url, "no connection")
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self.client = client

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.cfg.session_expiry
        # messages in flight to us at once (the broker's own cap, mosquitto's max_inflight_messages, may be lower):
        # enough for intake's batches, so one store commit acknowledges many
        props.ReceiveMaximum = self.receive_maximum
        link = self.cfg.link
        self.client.connect_async(link.host, link.port, keepalive=link.keepalive, clean_start=False,
                                  properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def ack(self, message: Message) -> None:
        if message.gen == self.gen:
            self.client.ack(message.mid, message.qos)

    # -- paho's network thread ---------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    rc: mqtt.ReasonCode, props: Properties | None) -> None:
        if rc.is_failure:
            self.last_error = f"connection refused: {rc}"
            log.warning("event=relay_connect_failed url=%s reason=%r", self.cfg.link.url, str(rc))
            return
        self.gen += 1
        self.connects += 1
        self.connected.set()
        log.info("event=relay_connected url=%s client_id=%s session_present=%s", self.cfg.link.url,
                 self.cfg.link.client_id, flags.session_present)
        # subscribing again is harmless with a kept session and needed without one (a broker restart)
        client.subscribe([(f, 1) for f in self.cfg.filters()])

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, codes: list[mqtt.ReasonCode],
                      props: Properties | None) -> None:
        refused = [str(c) for c in codes if c.is_failure]
        if refused:
            self.last_error = f"subscription refused: {', '.join(refused)}"
            log.error("event=relay_subscribe_refused filters=%s reasons=%s", ",".join(self.cfg.filters()), refused)
            return
        log.info("event=relay_subscribed filters=%s", ",".join(self.cfg.filters()))
        self.loop.call_soon_threadsafe(self.subscribed.set)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object,
                       rc: mqtt.ReasonCode, props: Properties | None) -> None:
        self.connected.clear()
        self.last_error = f"disconnected: {rc}"
        log.warning("event=relay_disconnected url=%s reason=%r", self.cfg.link.url, str(rc))

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self._arrived.append(Message(msg.mid, msg.qos, msg.topic, bytes(msg.payload), self.gen))
        if not self._scheduled:      # one wake-up of the loop for a burst, not one per message
            self._scheduled = True
            self.loop.call_soon_threadsafe(self._hand_over)

    def _hand_over(self) -> None:
        """In the loop: what arrived goes to intake's queue, in order."""
        self._scheduled = False      # first: a message appended from now on schedules another hand-over
        while self._arrived:
            self.queue.put_nowait(self._arrived.popleft())
