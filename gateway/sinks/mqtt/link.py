"""One supervised connection to an MQTT broker (paho-mqtt 2, callback API version 2).

It owns the connection's life: connect (TCP, TLS, CONNACK) with a timeout,
a network thread that runs paho's loop for as long as the connection lives,
reconnection with capped, jittered backoff after any failure (after one that
found nothing listening, a bare TCP connect looks first: `gateway.sinks.reach`),
and the mapping from a publish's message id to its acknowledgement (PUBACK for
QoS 1), handed to asyncio as a future. Every connection is a fresh client with a clean
session, so nothing paho queued for a dead connection is sent again behind the
sink's back: after a reconnect the sink publishes again from its cursor.
The link never ends on an error: `run` only returns when asked to stop.
It does not own what is published (the sink and the heartbeat do) nor the
last will's content (given by the heartbeat).
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from drivers.base import Backoff
from gateway.config import MqttSinkConfig
from gateway.credentials import fingerprint
from gateway.errors import PermanentDeliveryError, TransientDeliveryError
from gateway.sinks.common import retry_pause, wait_any
from gateway.sinks.reach import unreachable

log = logging.getLogger("linebridge.sinks.mqtt")

#: a connection that lived this long resets the reconnect backoff
STABLE_AFTER = 5.0


@dataclass(frozen=True)
class Will:
    """The message the broker publishes for us when the connection dies without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class ConnectFailed(Exception):
    """One connection attempt failed; the message says why, in an operator's words.

    `away`: nothing accepted the TCP connection (refused, unreachable, no answer).
    """

    def __init__(self, message: str, away: bool = False) -> None:
        super().__init__(message)
        self.away = away


class MqttLink:
    """A connection that heals itself; `publish` returns a future done on the broker's ack."""

    def __init__(self, cfg: MqttSinkConfig, will: Will | None = None) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.will = will
        self.state = "starting"
        self.last_error: str | None = None
        self.connects = 0
        self.connected = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._gen = 0                      # which connection a callback belongs to
        self._lock = threading.Lock()
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._early: set[int] = set()      # acks that came before the publisher registered
        self._lost = asyncio.Event()
        self._socket_error: str | None = None
        self._connected_at = 0.0
        self._connack: asyncio.Future[str | None] | None = None
        self._delay = 0.0
        #: where the password is kept (`gateway.credentials.SecretWatch`): read again before each connect,
        #: so a rotated password is used from the next connection on; the one in use is not dropped for it
        self.password_watch: Any = None

    # -- the supervised loop --------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, keep connected, reconnect with backoff; return (disconnected) once `stop` is set."""
        self._loop = asyncio.get_running_loop()
        backoff = Backoff(initial=0.5, cap=self.cfg.retry_cap)
        away = False  # the last attempt found nothing listening: the next one looks with a bare connect first
        try:
            while not stop.is_set():
                try:
                    if away:  # a fresh client and its thread cost far more to fail than a TCP connect
                        why = await unreachable(self.cfg.host, self.cfg.port, self.cfg.timeout)
                        if why is not None:
                            raise ConnectFailed(why, away=True)
                    await self._connect()
                except ConnectFailed as exc:
                    away = exc.away
                    self._fail(str(exc), backoff, "mqtt_connect_failed")
                    await retry_pause(stop, self._delay)
                    continue
                await wait_any(stop, self._lost, timeout=None)
                if stop.is_set():
                    break
                if time.monotonic() - self._connected_at >= STABLE_AFTER:
                    backoff.reset()
                reason = self._socket_error or "the broker closed the connection"
                self._drop(f"connection lost: {reason}")
                self._fail(f"connection lost: {reason}", backoff, "mqtt_connection_lost")
                await retry_pause(stop, self._delay)
        finally:
            await self._close()

    async def probe(self) -> str | None:
        """Connect once and disconnect: None when the broker accepted us, else why not (connection tests)."""
        self._loop = asyncio.get_running_loop()
        try:
            await self._connect()
        except ConnectFailed as exc:
            return str(exc)
        finally:
            await self._close()
        return None

    def _fail(self, error: str, backoff: Backoff, event: str) -> None:
        self._delay = backoff.next_delay()
        self.state = "retrying"
        self.last_error = error
        log.warning("event=%s sink=%s url=%s retry_in=%.1fs error=%r", event, self.name, self.cfg.url,
                    self._delay, error)

    async def _connect(self) -> None:
        if self.password_watch is not None:
            new = self.password_watch.poll(force=True)
            if new is not None:
                self.cfg = replace(self.cfg, password=new)
                log.warning("event=credential_rotated sink=%s password=%s", self.name, fingerprint(new))
        self.state = "connecting"
        self._gen += 1
        gen = self._gen
        self._lost.clear()
        self._socket_error = None
        client = self._new_client(gen)
        connack: asyncio.Future[str | None] = self._loop.create_future()  # type: ignore[union-attr]
        self._connack = connack
        try:
            await asyncio.wait_for(asyncio.to_thread(client.connect, self.cfg.host, self.cfg.port,
                                                     self.cfg.keepalive), self.cfg.timeout + 1.0)
        except ssl.SSLCertVerificationError as exc:
            raise ConnectFailed(f"TLS: the broker's certificate is not trusted: {exc.verify_message} "
                                f"(ca_file {self.cfg.ca_file or 'system CA store'}; SSL reason "
                                f"{exc.reason})") from exc
        except ssl.SSLError as exc:
            raise ConnectFailed(f"TLS handshake failed: {exc.reason or exc}") from exc
        except ssl.CertificateError as exc:
            raise ConnectFailed(f"TLS: the broker's certificate does not name {self.cfg.host}: {exc}") from exc
        except (asyncio.TimeoutError, socket.timeout) as exc:
            raise ConnectFailed(f"no answer from {self.cfg.host}:{self.cfg.port} within "
                                f"{self.cfg.timeout:.0f}s", away=True) from exc
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {self.cfg.host}:{self.cfg.port}: {exc.strerror or exc}",
                                away=True) from exc
        self._client = client
        thread = threading.Thread(target=self._network, args=(client, gen), daemon=True,
                                  name=f"mqtt:{self.name}")
        thread.start()
        try:
            refused = await asyncio.wait_for(asyncio.shield(connack), self.cfg.timeout)
        except asyncio.TimeoutError:
            refused = f"no CONNACK within {self.cfg.timeout:.0f}s"
        if refused is not None:
            self._drop(refused)
            raise ConnectFailed(refused)
        self.connects += 1
        self._connected_at = time.monotonic()
        self.state = "connected"
        self.last_error = None
        self.connected.set()
        log.info("event=mqtt_connected sink=%s url=%s client_id=%s", self.name, self.cfg.url,
                 self.cfg.client_id)

    def _new_client(self, gen: int) -> mqtt.Client:
        cfg = self.cfg
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id, clean_session=True,
                             protocol=mqtt.MQTTv311)
        client.connect_timeout = cfg.timeout
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls:
            ctx = ssl.create_default_context(cafile=cfg.ca_file)
            if cfg.certfile:
                ctx.load_cert_chain(cfg.certfile, cfg.keyfile)
            client.tls_set_context(ctx)
        if self.will is not None:
            client.will_set(self.will.topic, self.will.payload, self.will.qos, self.will.retain)
        client.max_inflight_messages_set(max(20, cfg.batch_size))
        client.max_queued_messages_set(0)
        # only the network thread writes to the socket; publish() just queues and wakes it
        client.on_socket_register_write = lambda *_: None
        client.on_connect = lambda c, u, flags, rc, props: self._on_connect(gen, rc)
        client.on_publish = lambda c, u, mid, rc, props: self._on_publish(gen, mid, rc)
        client.on_log = lambda c, u, level, buf: self._on_log(gen, level, buf)
        return client

    def _network(self, client: mqtt.Client, gen: int) -> None:
        """The connection's thread: paho's loop until the connection ends, then report it."""
        try:
            while True:
                rc = client.loop(timeout=0.2)
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    if self._socket_error is None and rc != MQTTErrorCode.MQTT_ERR_NO_CONN:
                        self._socket_error = mqtt.error_string(rc)
                    break
        except Exception as exc:  # the thread must report, never die silently
            self._socket_error = f"network loop failed: {exc or type(exc).__name__}"
        finally:
            self._threadsafe(self._on_lost, gen)

    # -- callbacks (network thread) ----------------------------------------------------

    def _threadsafe(self, fn: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:
                pass  # the loop closed while we were reporting

    def _on_connect(self, gen: int, rc: Any) -> None:
        reason = f"the broker refused the connection: {rc}" if rc.is_failure else None
        self._threadsafe(self._resolve_connack, gen, reason)

    def _resolve_connack(self, gen: int, reason: str | None) -> None:
        if gen == self._gen and self._connack is not None and not self._connack.done():
            self._connack.set_result(reason)

    def _on_publish(self, gen: int, mid: int, rc: Any) -> None:
        with self._lock:
            if gen != self._gen:
                return
            fut = self._pending.pop(mid, None)
            if fut is None:
                self._early.add(mid)
                return
        self._threadsafe(_settle, fut, None)

    def _on_log(self, gen: int, level: int, buf: str) -> None:
        if level == mqtt.MQTT_LOG_ERR and gen == self._gen:
            self._socket_error = buf

    def _on_lost(self, gen: int) -> None:
        if gen != self._gen:
            return
        if self._connack is not None and not self._connack.done():
            self._connack.set_result("the connection closed during the handshake: "
                                     + (self._socket_error or "no CONNACK"))
        self._lost.set()
        self._fail_pending(self._socket_error or "connection lost")

    # -- publishing (event loop thread) ------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> asyncio.Future[None]:
        """Queue one message; the future completes on the broker's acknowledgement.

        Raises TransientDeliveryError when there is no connection, and
        PermanentDeliveryError when paho refuses this message itself (too large).
        """
        client = self._client
        if client is None or not self.connected.is_set():
            raise TransientDeliveryError(f"not connected to {self.cfg.url}"
                                         + (f": {self.last_error}" if self.last_error else ""))
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_PAYLOAD_SIZE:
            raise PermanentDeliveryError(f"payload of {len(payload)} bytes is too large for MQTT")
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise TransientDeliveryError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if qos == 0:
            fut.set_result(None)
            return fut
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                fut.set_result(None)
            else:
                self._pending[info.mid] = fut
        return fut

    def in_flight(self) -> int:
        with self._lock:
            return len(self._pending)

    def _fail_pending(self, reason: str) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            self._early.clear()
        for fut in pending.values():
            _settle(fut, TransientDeliveryError(f"no acknowledgement: {reason}"))

    def _drop(self, reason: str) -> None:
        """Forget the current connection (its thread ends on its own)."""
        self.connected.clear()
        client, self._client = self._client, None
        self._gen += 1  # late callbacks of the old connection are ignored
        self._fail_pending(reason)
        if client is not None:
            try:
                client.disconnect()
            except Exception as exc:  # a dead socket: nothing to say goodbye on
                log.debug("event=mqtt_disconnect_failed sink=%s error=%r", self.name, str(exc))

    async def _close(self) -> None:
        """Clean DISCONNECT (so the broker does not send the last will), then stop the thread."""
        client = self._client
        self.connected.clear()
        if client is not None:
            done = self._lost
            client.disconnect()
            await wait_any(done, timeout=2.0)
        self._client = None
        self._gen += 1
        self._fail_pending("the link is closing")
        self.state = "stopped"


def _settle(fut: asyncio.Future[None], exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)
