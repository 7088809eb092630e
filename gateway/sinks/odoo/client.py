"""Odoo's external API over JSON-RPC (`/jsonrpc`), with errors classified for retry.

It owns the wire: `common.version`, `common.authenticate` (API key as password)
and `object.execute_kw`, each with a timeout, and the translation of every
failure into a delivery error that says whether a retry can help:

- network errors, timeouts, HTTP 5xx and 429 (with an excerpt of the page),
  database concurrency conflicts (`psycopg2.errors.SerializationFailure`,
  `LockNotAvailable`, deadlocks): transient (retry with backoff);
- `AccessDenied`, `AccessError`, an unknown database, a wrong URL: the sink
  pauses and alarms (retrying slowly, a person must act);
- everything else Odoo answers (ValidationError, UserError, MissingError,
  ValueError, ...): permanent for that event, with Odoo's own message.

A reply without a `result` key is a success whose value is None (Odoo omits the
key when a method returns None).  The other wires are `xmlrpc.py` and
`json2.py`; `protocol.py` holds what they share.
"""
from __future__ import annotations

import itertools
from typing import Any

import httpx

from gateway.errors import AuthDeliveryError, PermanentDeliveryError, TransientDeliveryError
from gateway.sinks.odoo.protocol import ServiceRpc, excerpt, is_transient_name, new_http, not_odoo_reply, send

_PAUSE = {"odoo.exceptions.AccessDenied", "odoo.exceptions.AccessError", "psycopg2.OperationalError"}


class OdooClient(ServiceRpc):
    """An authenticated JSON-RPC session against one Odoo database."""

    protocol = "jsonrpc"

    def __init__(self, url: str, database: str, login: str, api_key: str,
                 timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.login = login
        self._key = api_key
        self.uid: int | None = None
        self.server_version: str | None = None
        self._ids = itertools.count(1)
        self._http = new_http(timeout, transport)

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, service: str, method: str, *args: Any) -> Any:
        """One JSON-RPC call; returns `result` (None when absent) or raises a DeliveryError."""
        body = {"jsonrpc": "2.0", "method": "call", "id": next(self._ids),
                "params": {"service": service, "method": method, "args": list(args)}}
        what = f"{service}.{method}"
        resp = await send(self._http, "POST", f"{self.url}/jsonrpc", what, json=body)
        if resp.status_code != 200:
            raise not_odoo_reply(resp, what)
        try:
            reply = resp.json()
        except ValueError as exc:
            raise TransientDeliveryError(f"non-JSON reply (HTTP 200) from {self.url}/jsonrpc ({what}): "
                                         f"{excerpt(resp)!r}") from exc
        if not isinstance(reply, dict):
            raise TransientDeliveryError(f"unexpected JSON-RPC reply from {self.url}/jsonrpc: {excerpt(resp)!r}")
        if "error" in reply:
            raise classify(reply["error"])
        return reply.get("result")


def classify(error: dict[str, Any]) -> Exception:
    """Turn a JSON-RPC `error` object into the matching DeliveryError."""
    data = error.get("data") or {}
    name = data.get("name") or "unknown"
    message = data.get("message") or error.get("message") or "Odoo error"
    text = f"{name}: {message}"
    if is_transient_name(name, message):  # before _PAUSE: a SerializationFailure is an OperationalError
        return TransientDeliveryError(text, remote_name=name)
    if name in _PAUSE:
        return AuthDeliveryError(text, remote_name=name)
    return PermanentDeliveryError(text, remote_name=name)
