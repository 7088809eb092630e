"""A bare TCP connect: the cheap look at whether a peer listens, before a real attempt.

While a peer is away, every retry that builds a whole attempt (an HTTP request
through httpx, a fresh MQTT client connecting from a thread) costs
milliseconds of CPU to fail; a TCP connect that is refused costs a fraction of
that. So a sink's retry that follows a failure to connect first looks with
`unreachable()`, and only when something accepts the connection does the real
attempt go. What the look saw counts as that attempt: same retry counter, same
backoff, same log line. It owns the look only, not the decision to make it.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import urllib.parse
import urllib.request

#: default ports of the URL schemes the sinks speak
DEFAULT_PORTS = {"http": 80, "https": 443, "mqtt": 1883, "mqtts": 8883}


async def unreachable(host: str, port: int, timeout: float) -> str | None:
    """None when `host:port` accepts a TCP connection within `timeout` s (closed at once), else why not."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            if _numeric(host):  # no resolver round trip (a thread) for an address
                addrs = [(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port))]
            else:
                addrs = [(i[0], i[4]) for i in await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
            error: OSError = OSError(f"{host} has no address")
            for family, addr in addrs:
                with socket.socket(family, socket.SOCK_STREAM) as sock:
                    sock.setblocking(False)
                    try:
                        await loop.sock_connect(sock, addr)
                    except OSError as exc:
                        error = exc
                        continue
                    return None  # nothing is sent: the peer sees a connection that ends at once
            raise error
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:g}s"
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)  # asyncio's own text names no cause
        return f"cannot connect to {host}:{port}: {reason}"


def _numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def direct_address(url: str) -> tuple[str, int] | None:
    """(host, port) a client connects to for `url`, or None when a proxy from the environment
    stands in between (then a bare connect to the host says nothing about the way there)."""
    # urllib.parse, not httpx: the MQTT link uses this too, and a gateway without Odoo loads no httpx
    try:
        u = urllib.parse.urlsplit(url)
        host, port = u.hostname, u.port
    except ValueError:
        return None
    if not host:
        return None
    proxies = urllib.request.getproxies()
    if (proxies.get(u.scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(host):
        return None
    port = port or DEFAULT_PORTS.get(u.scheme)
    return (host, port) if port else None
