"""One connection to the MQTT broker: a fresh paho client, its network thread, and the bridge to asyncio.

This module owns everything that touches paho-mqtt. A `Link` is one connection
attempt and, when it succeeds, the live connection: it builds a paho 2 client
(`CallbackAPIVersion.VERSION2`, MQTT 3.1.1, `manual_ack=True`, paho's own
reconnect switched off), connects in a daemon thread (paho's connect is
blocking; the socket timeout is `connect_timeout`), starts paho's network
thread with `loop_start()`, subscribes to every topic in `on_connect` (so every
reconnect resubscribes), reports the connection as live once the broker has
acknowledged the subscriptions, and hands every callback to the event loop with
`call_soon_threadsafe` as a small event object. Reconnecting, backoff, health
figures and mapping belong to the driver, which makes a new `Link` per
attempt; a link is never reused.
"""
from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from drivers.mqtt.config import MqttDeviceConfig


#: clearer words for what paho reports when a connection ends
_DISCONNECT_TEXT = {
    "Unspecified error": "connection closed by the broker or the network",
    "Keep alive timeout": "no answer from the broker within the keepalive",
}


@dataclass(frozen=True)
class Connected:
    """CONNACK accepted and SUBACK received: the connection is live and subscribed."""

    session_present: bool


@dataclass(frozen=True)
class Refused:
    """The broker answered CONNECT with an error (bad credentials, client id rejected...)."""

    reason: str


@dataclass(frozen=True)
class Lost:
    reason: str


@dataclass(frozen=True)
class SubscribeFailed:
    topic: str
    reason: str


@dataclass(frozen=True)
class Message:
    link: "Link"
    topic: str
    payload: bytes
    qos: int
    mid: int
    received: float  # epoch seconds, when paho handed the message over


Event = Connected | Refused | Lost | SubscribeFailed | Message


class Link:
    """One paho client and at most one connection; `close()` ends it from any state."""

    def __init__(self, config: MqttDeviceConfig, client_id: str,
                 loop: asyncio.AbstractEventLoop, post: Callable[["Link", Event], None],
                 clock: Callable[[], float]) -> None:
        self.config = config
        self._loop = loop
        self._post = post
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        self._started = False
        self.connected = False  # CONNACK and SUBACK received, not lost yet (set by the driver)
        self.delivered = False  # at least one message arrived on this connection
        #: connection events (not messages) for the driver's connection task
        self.control: asyncio.Queue[Event] = asyncio.Queue()
        self._subscriptions: dict[int, tuple[list[str], bool]] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=config.clean_session,
                                  protocol=mqtt.MQTTv311, manual_ack=True,
                                  reconnect_on_failure=False)
        self.client.connect_timeout = config.connect_timeout
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    # -- called from the event loop -------------------------------------------------

    def connect(self) -> "asyncio.Future[None]":
        """Open the connection in a daemon thread; the future fails with the OS/TLS error.

        A daemon thread rather than the loop's executor: an unreachable broker must
        not hold up the loop's shutdown for `connect_timeout`.
        """
        future: asyncio.Future[None] = self._loop.create_future()

        def run() -> None:
            try:
                self._connect_blocking()
            except BaseException as exc:  # handed to the awaiting coroutine, never lost
                self._resolve(future, exc)
            else:
                self._resolve(future, None)

        threading.Thread(target=run, name=f"linebridge-mqtt-connect-{self.client_id}",
                         daemon=True).start()
        return future

    def ack(self, mid: int, qos: int) -> bool:
        """Acknowledge a QoS 1 message on this connection; False when it is gone."""
        if qos == 0:
            return True
        if self._closed or not self.client.is_connected():
            return False
        try:
            return self.client.ack(mid, qos) == mqtt.MQTT_ERR_SUCCESS
        except (OSError, AttributeError, ValueError):
            return False

    def close(self) -> None:
        """Disconnect (a clean DISCONNECT when connected); the network thread then ends."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._started:
                try:
                    self.client.disconnect()
                except (OSError, AttributeError, ValueError):
                    pass

    @property
    def client_id(self) -> str:
        return self.client._client_id.decode("utf-8", "replace")

    # -- the connect thread -----------------------------------------------------------

    def _connect_blocking(self) -> None:
        cfg = self.config
        if cfg.username is not None:
            self.client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls is not None:
            self.client.tls_set(ca_certs=cfg.tls.ca_file, certfile=cfg.tls.certfile,
                                keyfile=cfg.tls.keyfile, cert_reqs=ssl.CERT_REQUIRED,
                                tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive)
        with self._lock:
            if self._closed:  # stop() came while connecting: leave cleanly
                self.client.disconnect()
                return
            self.client.loop_start()
            self._started = True

    def _resolve(self, future: "asyncio.Future[None]", exc: BaseException | None) -> None:
        def settle() -> None:
            if future.done():
                return
            if exc is None:
                future.set_result(None)
            else:
                future.set_exception(exc)
        self._call_in_loop(settle)

    # -- paho's network thread: never raise out of a callback (it would end the thread)

    def _send(self, event: Event) -> None:
        self._call_in_loop(self._post, self, event)

    def _call_in_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            pass

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        try:
            if reason_code.is_failure:
                self._send(Refused(str(reason_code)))
                return
            # resubscribe on every connection: a broker that lost our session has none
            wanted = [(t.topic, t.qos) for t in self.config.topics.values()]
            result, mid = client.subscribe(wanted)
            if result != mqtt.MQTT_ERR_SUCCESS:
                self._send(Lost(f"subscribe could not be sent ({mqtt.error_string(result)})"))
                return
            session_present = bool(getattr(flags, "session_present", False))
            self._subscriptions[mid] = ([t for t, _ in wanted], session_present)
        except Exception as exc:  # keep paho's thread alive; the driver sees the failure
            self._send(Lost(f"on_connect failed: {exc!r}"))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reason_codes: list[Any], properties: Any) -> None:
        """`Connected` is sent on SUBACK, so a connected driver is a subscribed one."""
        try:
            topics, session_present = self._subscriptions.pop(mid, ([], False))
            for topic, code in zip(topics, reason_codes):
                if code.is_failure:
                    self._send(SubscribeFailed(topic, str(code)))
            self._send(Connected(session_present))
        except Exception as exc:
            self._send(Lost(f"on_subscribe failed: {exc!r}"))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        try:
            text = str(reason_code)
            self._send(Lost(_DISCONNECT_TEXT.get(text, text)))
        except Exception:  # _send already guards the loop; nothing else can fail here
            pass

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            received = self._clock()
            try:
                topic = message.topic
            except UnicodeDecodeError:
                topic = bytes(message._topic).decode("utf-8", "replace")
            self._send(Message(self, topic, bytes(message.payload), message.qos, message.mid,
                               received))
        except Exception as exc:
            self._send(Lost(f"on_message failed: {exc!r}"))
