"""Odoo's external API over XML-RPC (`/xmlrpc/2/common`, `/xmlrpc/2/object`), asynchronously.

Bodies are the stdlib's ``xmlrpc.client.dumps`` (None allowed on the way in,
as Odoo's server parses it) posted with httpx, one timeout per call.  Faults
are classified by Odoo's integer codes (odoo/addons/base/controllers/rpc.py):

- 3 AccessDenied, 4 AccessError: AuthDeliveryError (pause, a person must act);
- 2 UserError / ValidationError / MissingError: PermanentDeliveryError;
- 1 (any other exception, the traceback in faultString): 'cannot marshal None'
  is :class:`UnknownOutcomeError` (the call committed, its None result could not
  be sent); a serialization failure, lock or deadlock is transient; an unknown
  database (psycopg2.OperationalError) pauses; anything else is permanent, named
  after the traceback's last line.

Prefer JSON-RPC or JSON-2 for methods that return None; this wire exists for
servers where only XML-RPC is reachable.
"""
from __future__ import annotations

import xml.parsers.expat
import xmlrpc.client
from typing import Any

import httpx

from gateway.errors import AuthDeliveryError, DeliveryError, PermanentDeliveryError, TransientDeliveryError
from gateway.sinks.odoo.protocol import (ServiceRpc, UnknownOutcomeError, excerpt, is_transient_name, new_http,
                                         not_odoo_reply, send)

FAULT_APPLICATION_ERROR, FAULT_WARNING, FAULT_ACCESS_DENIED, FAULT_ACCESS_ERROR = 1, 2, 3, 4
_NONE_FAULT = "cannot marshal None"


class XmlRpcClient(ServiceRpc):
    """An authenticated XML-RPC session against one Odoo database."""

    protocol = "xmlrpc"

    def __init__(self, url: str, database: str, login: str, api_key: str,
                 timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.login = login
        self._key = api_key
        self.uid: int | None = None
        self.server_version: str | None = None
        self._http = new_http(timeout, transport, {"Content-Type": "text/xml"})

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, service: str, method: str, *params: Any) -> Any:
        """One XML-RPC call to /xmlrpc/2/<service>; the result or a DeliveryError."""
        what = f"{service}.{method}"
        url = f"{self.url}/xmlrpc/2/{service}"
        body = xmlrpc.client.dumps(params, method, allow_none=True).encode()
        resp = await send(self._http, "POST", url, what, content=body)
        if resp.status_code != 200:
            raise not_odoo_reply(resp, what)
        try:
            (result,), _ = xmlrpc.client.loads(resp.content, use_builtin_types=True)
        except xmlrpc.client.Fault as fault:
            raise classify_fault(fault) from None
        except (xml.parsers.expat.ExpatError, ValueError, TypeError) as exc:
            raise TransientDeliveryError(f"HTTP {resp.status_code} from {url} ({what}) is not an XML-RPC reply: "
                                         f"{excerpt(resp)!r}") from exc
        return result


def _last_exception(fault_string: str) -> tuple[str, str]:
    """(name, message) from a faultString traceback's final 'module.Class: message' line."""
    lines = [line for line in fault_string.strip().splitlines() if line and not line.startswith(" ")]
    for index in range(len(lines) - 1, -1, -1):
        head, sep, rest = lines[index].partition(": ")
        if sep and " " not in head and not head.startswith("Traceback"):
            return head, "\n".join([rest, *lines[index + 1:]])
    return "unknown", fault_string.strip()


def classify_fault(fault: xmlrpc.client.Fault) -> DeliveryError:
    """Turn an Odoo /xmlrpc/2/ fault into the matching DeliveryError."""
    code, text = fault.faultCode, str(fault.faultString)
    if code == FAULT_ACCESS_DENIED:
        return AuthDeliveryError(f"odoo.exceptions.AccessDenied: {text}", remote_name="odoo.exceptions.AccessDenied")
    if code == FAULT_ACCESS_ERROR:
        return AuthDeliveryError(f"odoo.exceptions.AccessError: {text}", remote_name="odoo.exceptions.AccessError")
    if code == FAULT_WARNING:  # UserError or a subclass (ValidationError, MissingError): the fault does not say
        return PermanentDeliveryError(f"XML-RPC fault 2 (UserError): {text}", remote_name="odoo.exceptions.UserError")
    name, message = _last_exception(text)
    if _NONE_FAULT in text:
        return UnknownOutcomeError("the call committed in Odoo but its result (None) cannot travel over XML-RPC: "
                                   "read the record back before retrying", remote_name=name)
    if is_transient_name(name, message):
        return TransientDeliveryError(f"{name}: {message}", remote_name=name)
    if name == "psycopg2.OperationalError":
        return AuthDeliveryError(f"{name}: {message}", remote_name=name)
    return PermanentDeliveryError(f"{name}: {message}", remote_name=name)
