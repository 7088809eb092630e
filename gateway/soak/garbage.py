"""A Modbus TCP link that can turn to garbage: a loopback proxy in front of one simulated machine.

It owns one listening socket and, per gateway connection, one thread that
relays whole Modbus TCP frames (MBAP header, then its length) to the machine
and back. While `garbage` is set, requests are not relayed: the gateway gets
random bytes, a truncated frame, or an exception reply for a function it did
not call, as a damaged serial gateway or a wrong peer on the wire would send.
It never forges a well-formed register reply: those are plausible data, not
garbage. Counts what it sent in `garbage_replies`.
"""
from __future__ import annotations

import random
import socket
import struct
import threading


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def _recv_frame(sock: socket.socket) -> bytes | None:
    head = _recv_exact(sock, 7)
    if head is None:
        return None
    length = struct.unpack(">H", head[4:6])[0]
    if not 1 <= length <= 260:
        return None
    body = _recv_exact(sock, length - 1)
    return None if body is None else head + body


class GarbageProxy:
    """Listens on 127.0.0.1:`port` (0: any free port) and relays to 127.0.0.1:`upstream`."""

    def __init__(self, upstream: int, seed: int, port: int = 0) -> None:
        self.upstream = upstream
        self.garbage = threading.Event()
        self.garbage_replies = 0
        self._rng = random.Random(seed)
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="soak-garbage-proxy", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        try:
            self._sock.close()
        except OSError:
            pass

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), name="soak-garbage-conn", daemon=True).start()

    def _junk(self, request: bytes) -> bytes:
        kind = self._rng.randrange(3)
        if kind == 0:  # noise
            return bytes(self._rng.randrange(256) for _ in range(self._rng.randint(1, 40)))
        if kind == 1:  # a header promising more than ever comes
            return request[:4] + struct.pack(">H", 200) + request[6:7] + b"\x03\x10"
        # an exception reply to a function nobody called
        return request[:4] + struct.pack(">HBBB", 3, request[6], 0x80 | self._rng.choice((1, 5, 43, 90)),
                                         self._rng.randrange(1, 12))

    def _relay(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        client.settimeout(30)
        try:
            while not self._closed.is_set():
                request = _recv_frame(client)
                if request is None:
                    return
                if self.garbage.is_set():
                    self.garbage_replies += 1
                    client.sendall(self._junk(request))
                    if self._rng.random() < 0.3:
                        return  # and sometimes hang up after it
                    continue
                if upstream is None:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
                upstream.sendall(request)
                reply = _recv_frame(upstream)
                if reply is None:
                    return
                client.sendall(reply)
        except OSError:
            return
        finally:
            client.close()
            if upstream is not None:
                upstream.close()
