"""Odoo's external API over JSON-RPC (`/jsonrpc`), with errors classified for retry.

It owns the wire: `common.version`, `common.authenticate` (API key as password)
and `object.execute_kw`, each with a timeout, and the translation of every
failure into a delivery error that says whether a retry can help:

- network errors, timeouts, HTTP 5xx and 429, database concurrency conflicts:
  transient (retry with backoff);
- `AccessDenied`, `AccessError`, an unknown database, a wrong URL: the sink
  pauses and alarms (retrying slowly, a person must act);
- everything else Odoo answers (ValidationError, UserError, MissingError,
  ValueError, ...): permanent for that event, with Odoo's own message.

A reply without a `result` key is a success whose value is None (Odoo omits the
key when a method returns None).
"""
from __future__ import annotations

import itertools
import logging
from typing import Any

import httpx

from gateway.errors import AuthDeliveryError, PermanentDeliveryError, TransientDeliveryError

log = logging.getLogger("linebridge.sinks.odoo")

_PAUSE = {"odoo.exceptions.AccessDenied", "odoo.exceptions.AccessError", "psycopg2.OperationalError"}
_TRANSIENT_HINTS = ("could not serialize access", "concurrent update", "lock not available",
                    "deadlock detected", "SerializationFailure", "LockNotAvailable")


class OdooClient:
    """An authenticated JSON-RPC session against one Odoo database."""

    def __init__(self, url: str, database: str, login: str, api_key: str,
                 timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.login = login
        self._key = api_key
        self.uid: int | None = None
        self.server_version: str | None = None
        self._ids = itertools.count(1)
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout), transport=transport,
                                       headers={"User-Agent": "linebridge"})

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, service: str, method: str, *args: Any) -> Any:
        """One JSON-RPC call; returns `result` (None when absent) or raises a DeliveryError."""
        body = {"jsonrpc": "2.0", "method": "call", "id": next(self._ids),
                "params": {"service": service, "method": method, "args": list(args)}}
        try:
            resp = await self._http.post(f"{self.url}/jsonrpc", json=body)
        except httpx.TimeoutException as exc:
            raise TransientDeliveryError(f"timeout calling {service}.{method} at {self.url}: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise TransientDeliveryError(f"cannot reach Odoo at {self.url}: {exc!r}") from exc
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientDeliveryError(f"HTTP {resp.status_code} from {self.url}/jsonrpc")
        if resp.status_code == 404:
            raise AuthDeliveryError(f"HTTP 404 from {self.url}/jsonrpc: is this an Odoo server?")
        if resp.status_code != 200:
            raise PermanentDeliveryError(f"HTTP {resp.status_code} from {self.url}/jsonrpc: {resp.text[:200]}")
        try:
            reply = resp.json()
        except ValueError as exc:
            raise TransientDeliveryError(f"non-JSON reply from {self.url}/jsonrpc: {resp.text[:200]!r}") from exc
        if "error" in reply:
            raise classify(reply["error"])
        return reply.get("result")

    async def version(self) -> dict[str, Any]:
        info = await self.call("common", "version")
        self.server_version = info.get("server_version") if isinstance(info, dict) else None
        return info

    async def authenticate(self) -> int:
        uid = await self.call("common", "authenticate", self.database, self.login, self._key, {})
        if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
            raise AuthDeliveryError(f"Odoo refused login {self.login!r} on database {self.database!r} "
                                    "(wrong login or API key)", remote_name="odoo.exceptions.AccessDenied")
        self.uid = uid
        return uid

    async def execute_kw(self, model: str, method: str, args: list[Any],
                         kwargs: dict[str, Any] | None = None) -> Any:
        if self.uid is None:
            await self.authenticate()
        call_args: list[Any] = [self.database, self.uid, self._key, model, method, args]
        if kwargs:
            call_args.append(kwargs)
        return await self.call("object", "execute_kw", *call_args)


def classify(error: dict[str, Any]) -> Exception:
    """Turn a JSON-RPC `error` object into the matching DeliveryError."""
    data = error.get("data") or {}
    name = data.get("name") or "unknown"
    message = data.get("message") or error.get("message") or "Odoo error"
    text = f"{name}: {message}"
    if name in _PAUSE:
        return AuthDeliveryError(text, remote_name=name)
    if any(h in text for h in _TRANSIENT_HINTS):
        return TransientDeliveryError(text, remote_name=name)
    return PermanentDeliveryError(text, remote_name=name)
