"""Odoo 19's JSON-2 API (``POST /json/2/<model>/<method>``, bearer API key), behind execute_kw.

The sink calls ``execute_kw(model, method, args, kwargs)`` with XML-RPC/JSON-RPC
positional ``args``; JSON-2 takes named arguments only, so this client maps
them (:func:`named_arguments`):

- model-level methods: their positional parameters by Odoo's names:
  ``search(domain, offset, limit, order)``, ``search_read(domain, fields,
  offset, limit, order)``, ``search_count(domain, limit)``, ``create(vals_list)``,
  ``load(fields, data)``, ``fields_get(allfields, attributes)``,
  ``default_get(fields_list)``, ``name_create(name)``,
  ``name_search(name, domain, operator, limit)`` (``args`` before Odoo 18),
  ``check_object_reference(module, xml_id)``, ``check_access_rights(operation,
  raise_exception)`` (deprecated from 18: use the record method ``has_access``), ``context_get()``;
- record methods: ``args[0]`` is ``ids``, then ``read(fields, load)``,
  ``write(vals)``, ``unlink()``, ``copy(default)``, ``message_post()``
  (keywords only), and any other method (``action_*``, ``button_*``, ``unblock``,
  ``set_qty_producing``, ...) takes ``ids`` and keywords only;
- ``kwargs`` (``context`` included) are sent as they are.

A positional argument the table cannot name is refused before sending
(PermanentDeliveryError: pass it in ``kwargs``).  Results are made the same as
JSON-RPC's where JSON-2 differs: ``create`` with one dict answers one id,
``message_post`` answers the message id.  Statuses: 401 and 403 pause the sink
(AuthDeliveryError), 404 (unknown model, method or record) and 422 (UserError,
ValidationError, bad arguments) are permanent with Odoo's name and message,
409, 429, 502, 503, 504 and a 500 for a serialization failure or lock are
transient, any other 500 permanent; a reply that is not Odoo's JSON (a proxy
page) is transient with the status and an excerpt, an HTML 404 (no JSON-2
here, Odoo < 19 or a wrong URL) pauses.
"""
from __future__ import annotations

from typing import Any

import httpx

from gateway.errors import AuthDeliveryError, DeliveryError, PermanentDeliveryError, TransientDeliveryError
from gateway.sinks.odoo.protocol import OdooRpc, excerpt, is_transient_name, new_http, not_odoo_reply, send

MODEL_METHODS: dict[str, tuple[str, ...]] = {
    "search": ("domain", "offset", "limit", "order"),
    "search_read": ("domain", "fields", "offset", "limit", "order"),
    "search_count": ("domain", "limit"),
    "create": ("vals_list",),
    "load": ("fields", "data"),
    "fields_get": ("allfields", "attributes"),
    "default_get": ("fields_list",),
    "name_create": ("name",),
    "name_search": ("name", "domain", "operator", "limit"),
    "check_object_reference": ("module", "xml_id"),
    "check_access_rights": ("operation", "raise_exception"),
    "context_get": (),
}
RECORD_METHODS: dict[str, tuple[str, ...]] = {
    "read": ("fields", "load"),
    "write": ("vals",),
    "unlink": (),
    "copy": ("default",),
    "exists": (),
    "has_access": ("operation",),
}
_RETURNS_ONE_ID = {"message_post"}
_TRANSIENT_STATUS = {409, 429, 502, 503, 504}


def named_arguments(model: str, method: str, args: list[Any],
                    kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON-2 body for an execute_kw-style call (see the module docstring)."""
    args = list(args)
    body: dict[str, Any] = {}
    if method in MODEL_METHODS:
        names = MODEL_METHODS[method]
    else:
        names = RECORD_METHODS.get(method, ())
        if args:
            ids = args.pop(0)
            body["ids"] = [ids] if isinstance(ids, int) and not isinstance(ids, bool) else list(ids or [])
    if len(args) > len(names):
        raise PermanentDeliveryError(
            f"JSON-2 needs named arguments: {model}.{method} got {len(args)} positional argument(s) this client "
            f"cannot name ({', '.join(names) or 'none known'}); pass them in kwargs",
            remote_name="linebridge.json2.unnamed_argument")
    body.update(zip(names, args))
    for key, value in (kwargs or {}).items():
        if key in body:
            raise PermanentDeliveryError(f"{model}.{method}: {key!r} given both positionally and by name",
                                         remote_name="linebridge.json2.unnamed_argument")
        body[key] = value
    return body


class Json2Client(OdooRpc):
    """A JSON-2 session against one Odoo 19+ database (stateless: the key goes with every call)."""

    protocol = "json2"

    def __init__(self, url: str, database: str, login: str, api_key: str,
                 timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.login = login
        self.uid: int | None = None
        self.server_version: str | None = None
        headers = {"Authorization": f"bearer {api_key}"}
        if database:
            headers["X-Odoo-Database"] = database  # required when the server hosts several databases
        self._http = new_http(timeout, transport, headers)

    async def close(self) -> None:
        await self._http.aclose()

    def set_api_key(self, api_key: str) -> None:
        self._http.headers["Authorization"] = f"bearer {api_key}"

    async def version(self) -> dict[str, Any]:
        """``GET /web/version``, with common.version's keys added (server_version, server_version_info)."""
        what = "GET /web/version"
        resp = await send(self._http, "GET", f"{self.url}/web/version", what)
        if resp.status_code != 200:
            raise not_odoo_reply(resp, what)
        try:
            info = resp.json()
            version, version_info = info["version"], info["version_info"]
        except (ValueError, KeyError, TypeError) as exc:
            raise TransientDeliveryError(f"unexpected reply to {what} from {self.url}: {excerpt(resp)!r}") from exc
        self.server_version = version
        return {**info, "server_version": version, "server_version_info": version_info}

    async def authenticate(self) -> int:
        """Checks the API key and learns its user (``res.users.context_get``)."""
        context = await self.call("res.users", "context_get", {})
        uid = context.get("uid") if isinstance(context, dict) else None
        if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
            raise AuthDeliveryError(f"Odoo at {self.url} did not say which user the API key is")
        self.uid = uid
        return uid

    async def execute_kw(self, model: str, method: str, args: list[Any],
                         kwargs: dict[str, Any] | None = None) -> Any:
        body = named_arguments(model, method, args, kwargs)
        result = await self.call(model, method, body)
        if method == "create" and args and isinstance(args[0], dict) and isinstance(result, list) \
                and len(result) == 1:
            return result[0]
        if method in _RETURNS_ONE_ID and isinstance(result, list) and len(result) == 1:
            return result[0]
        return result

    async def call(self, model: str, method: str, body: dict[str, Any]) -> Any:
        """One ``POST /json/2/<model>/<method>`` with named arguments; the plain result or a DeliveryError."""
        what = f"{model}.{method}"
        resp = await send(self._http, "POST", f"{self.url}/json/2/{model}/{method}", what, json=body)
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        if resp.status_code == 200:
            if payload is None and resp.content.strip() != b"null":
                raise TransientDeliveryError(f"HTTP 200 from {self.url}/json/2/{model}/{method} is not JSON: "
                                             f"{excerpt(resp)!r}")
            return payload
        if not isinstance(payload, dict) or "name" not in payload:
            raise not_odoo_reply(resp, what)
        raise classify_status(resp.status_code, payload)


def classify_status(status: int, error: dict[str, Any]) -> DeliveryError:
    """Turn a JSON-2 error (status and serialize_exception body) into the matching DeliveryError."""
    name = str(error.get("name") or "unknown")
    message = str(error.get("message") or "")
    text = f"HTTP {status} {name}: {message}"
    if status in (401, 403):
        return AuthDeliveryError(text, remote_name=name)
    if status in _TRANSIENT_STATUS:
        return TransientDeliveryError(text, remote_name=name)
    if status >= 500:
        if is_transient_name(name, message):
            return TransientDeliveryError(text, remote_name=name)
        return PermanentDeliveryError(text, remote_name=name)
    return PermanentDeliveryError(text, remote_name=name)
