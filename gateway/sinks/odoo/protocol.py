"""What every Odoo wire offers the sink, the errors they share, and choosing a wire.

Owns the common async interface (:class:`OdooRpc`: ``version``,
``authenticate``, ``execute_kw``, ``close``, with XML-RPC/JSON-RPC positional
``args``), the HTTP helpers every client uses so that network failures,
timeouts and replies that are not Odoo's (a proxy's HTML 502 page) classify the
same way, :class:`UnknownOutcomeError`, and :func:`connect`, which picks
JSON-RPC, XML-RPC or JSON-2 (``auto``: JSON-2 from Odoo 19, else JSON-RPC).
The wires themselves live in ``client.py`` (JSON-RPC), ``xmlrpc.py`` and
``json2.py``.
"""
from __future__ import annotations

import functools
import logging
import re
import ssl
from typing import Any

import httpx

from gateway.errors import AuthDeliveryError, DeliveryError, PermanentDeliveryError, TransientDeliveryError, \
    UnreachableError

log = logging.getLogger("linebridge.sinks.odoo")

PROTOCOLS = ("jsonrpc", "xmlrpc", "json2", "auto")
# PostgreSQL concurrency failures that survived Odoo's own retries: trying again later helps
TRANSIENT_NAMES = {"psycopg2.errors.SerializationFailure", "psycopg2.errors.LockNotAvailable",
                   "psycopg2.errors.DeadlockDetected", "psycopg2.extensions.TransactionRollbackError",
                   "odoo.exceptions.ConcurrencyError", "odoo.exceptions.LockError",
                   # Odoo restarting mid-request: its pool or the connection under a cursor went away,
                   # the transaction was rolled back (nothing ran twice)
                   "psycopg2.pool.PoolError", "psycopg2.InterfaceError", "psycopg2.errors.AdminShutdown",
                   "psycopg2.errors.CannotConnectNow"}
TRANSIENT_HINTS = ("could not serialize access", "concurrent update", "lock not available",
                   "deadlock detected", "SerializationFailure", "LockNotAvailable", "DeadlockDetected",
                   "connection already closed", "cursor already closed", "connection pool exhausted",
                   "server closed the connection unexpectedly", "terminating connection due to administrator",
                   "the database system is starting up", "the database system is shutting down")
#: Odoo's refusals of the request itself: the same request gets the same answer, whatever the write
BUSINESS_REJECTIONS = {"odoo.exceptions.UserError", "odoo.exceptions.ValidationError",
                       "odoo.exceptions.MissingError", "odoo.exceptions.AccessError",
                       "odoo.exceptions.AccessDenied", "odoo.exceptions.RedirectWarning",
                       "odoo.exceptions.except_orm", "odoo.exceptions.Warning",
                       # the arguments themselves are wrong (an unknown field, a bad value): a contract error
                       "builtins.ValueError", "builtins.TypeError", "ValueError", "TypeError",
                       "linebridge.json2.unnamed_argument"}
#: calls the sink makes that are safe to repeat as they are: reads, absolute writes (the sink writes
#: counts and end times, never increments), and `load`, an upsert keyed by the event's external id
IDEMPOTENT_METHODS = frozenset({"read", "search", "search_read", "search_count", "fields_get", "load", "write",
                                "check_object_reference", "check_access_rights", "has_access", "context_get"})


class UnknownOutcomeError(DeliveryError):
    """The call ran and committed in Odoo, but its result could not be delivered to us.

    XML-RPC cannot carry None: a method returning None (``set_qty_producing``, a
    ``button_mark_done`` whose action holds a None) commits its transaction and
    only then faults with 'cannot marshal None'.  Retrying blindly may apply the
    change twice.  The sink must reconcile first: read the record back, or look
    the event's external id up, and only then decide whether anything is left to
    do.  Retryable in that sense (the event is not dead), but not as-is.
    """

    retryable = True


class OdooRpc:
    """An authenticated session against one Odoo database, whatever the wire.

    ``execute_kw(model, method, args, kwargs)`` takes ``args`` as XML-RPC and
    JSON-RPC do (record ids first for record methods) and answers what
    ``execute_kw`` over JSON-RPC answers; errors are DeliveryErrors.
    """

    protocol = "?"
    uid: int | None = None

    async def version(self) -> dict[str, Any]:
        """At least ``server_version`` and ``server_version_info``."""
        raise NotImplementedError

    async def authenticate(self) -> int:
        raise NotImplementedError

    async def execute_kw(self, model: str, method: str, args: list[Any],
                         kwargs: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def set_api_key(self, api_key: str) -> None:
        """Use `api_key` from the next call on (a rotation); calls in flight end with the old one."""
        raise NotImplementedError

    async def __aenter__(self) -> "OdooRpc":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class ServiceRpc(OdooRpc):
    """The `common` / `object` services both JSON-RPC and XML-RPC expose; subclasses give `call`.

    ``authenticate`` takes the API key as the password; a false uid is a refusal,
    not a uid. ``execute_kw`` authenticates on first use.
    """

    database: str
    login: str
    _key: str
    server_version: str | None = None

    async def call(self, service: str, method: str, *args: Any) -> Any:
        raise NotImplementedError

    async def version(self) -> dict[str, Any]:
        info = await self.call("common", "version")
        self.server_version = info.get("server_version") if isinstance(info, dict) else None
        return info

    def set_api_key(self, api_key: str) -> None:
        self._key = api_key    # the same login: its uid stays valid

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
        params: list[Any] = [self.database, self.uid, self._key, model, method, args]
        if kwargs:
            params.append(kwargs)
        return await self.call("object", "execute_kw", *params)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The system's CA store, loaded once: building it costs ~50 ms, and while Odoo is down every
    retry (version probe, then session) opens a new client."""
    return ssl.create_default_context()


def new_http(timeout: float, transport: httpx.AsyncBaseTransport | None = None,
             headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """The HTTP client of one Odoo session: one timeout for connect, write, read and pool."""
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout), transport=transport, verify=_tls_context(),
                             headers={"User-Agent": "linebridge", **(headers or {})})


async def send(http: httpx.AsyncClient, method: str, url: str, what: str, **kw: Any) -> httpx.Response:
    """One HTTP request; network errors and timeouts become TransientDeliveryError."""
    try:
        return await http.request(method, url, **kw)
    except httpx.ConnectTimeout as exc:  # nothing answered the connect: the sink looks cheaply next
        raise UnreachableError(f"timeout calling {what} at {url}: {type(exc).__name__}") from exc
    except httpx.ConnectError as exc:  # refused, no route: likewise
        raise UnreachableError(f"cannot reach Odoo at {url} ({what}): {plain(exc)}") from exc
    except httpx.TimeoutException as exc:
        raise TransientDeliveryError(f"timeout calling {what} at {url}: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        raise TransientDeliveryError(f"cannot reach Odoo at {url} ({what}): {plain(exc)}") from exc


def plain(exc: BaseException) -> str:
    """A network error as a person reads it ("[Errno 111] Connection refused"), not as Python
    spells it ("ConnectError(...)"); the class name only when the error says nothing else."""
    text = str(exc).strip()
    return text if text else {"ConnectError": "connection failed", "ReadError": "the connection broke",
                              "WriteError": "the connection broke", "RemoteProtocolError": "the server hung up",
                              }.get(type(exc).__name__, "network error")


def excerpt(resp: httpx.Response, limit: int = 160) -> str:
    """The start of a reply's body on one line (HTML tags dropped), for error messages."""
    text = re.sub(r"<[^>]+>", " ", resp.text[:2000])
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def not_odoo_reply(resp: httpx.Response, what: str) -> DeliveryError:
    """A reply that is not the expected Odoo format: status and a short body excerpt.

    408, 409 (a concurrency conflict), 425, 429 and 5xx pages (a proxy in front of a stopped or
    overloaded Odoo) and a 200 that is not what Odoo sends are transient; 401/403 and a 404
    (wrong URL or wire) pause the sink, a person must act; any other 4xx page is a request
    Odoo will refuse again (permanent).
    """
    text = f"HTTP {resp.status_code} from {resp.request.url} ({what}), not an Odoo reply: {excerpt(resp)!r}"
    if resp.status_code == 404:
        return AuthDeliveryError(text + " (wrong URL, or this Odoo does not serve that API?)")
    if resp.status_code in (401, 403):
        return AuthDeliveryError(text + " (refused by Odoo or a proxy in front of it)")
    if resp.status_code in (408, 409, 425, 429):
        return TransientDeliveryError(text)  # timeout, concurrency conflict, too early, too many
    if 400 <= resp.status_code < 500:
        return PermanentDeliveryError(text)
    return TransientDeliveryError(text)


def is_transient_name(name: str, message: str = "") -> bool:
    return name in TRANSIENT_NAMES or any(h in f"{name}: {message}" for h in TRANSIENT_HINTS)


def is_business_rejection(exc: DeliveryError) -> bool:
    """Whether Odoo refused the request itself (a UserError, a wrong argument), not failed while serving it.

    A reply that is an HTTP status page, not Odoo's error (no remote name), is judged by the
    wire's classification alone (a 4xx that is not a conflict stays permanent).
    """
    name = exc.remote_name
    if name is None:
        return True
    return name in BUSINESS_REJECTIONS or (name.startswith("odoo.exceptions.") and not is_transient_name(name))


def by_kind_of_write(method: str, exc: DeliveryError) -> DeliveryError:
    """The error as the sink must treat it: a server failure of an idempotent call is worth a retry.

    Any server error of a read, an absolute write or an external-id upsert that is
    not a business rejection (a pool or connection error while Odoo restarts, a
    KeyError in a half-loaded registry, ...) becomes transient: repeating the call
    cannot apply anything twice. Other calls keep the wire's classification.
    """
    if isinstance(exc, PermanentDeliveryError) and method in IDEMPOTENT_METHODS and not is_business_rejection(exc):
        return TransientDeliveryError(f"{exc} (server error on an idempotent {method}: retried)",
                                      remote_name=exc.remote_name)
    return exc


def major_of(info: dict[str, Any]) -> int:
    """The major version from common.version or /web/version ('saas~18.2' counts as 18)."""
    vinfo = info.get("server_version_info") or info.get("version_info")
    if isinstance(vinfo, list) and vinfo and isinstance(vinfo[0], int):
        return vinfo[0]
    text = str(info.get("server_version") or info.get("version") or "")
    match = re.search(r"(\d+)", text)
    if not match:
        raise PermanentDeliveryError(f"cannot read an Odoo version from {info!r}")
    return int(match.group(1))


async def detect_version(url: str, timeout: float = 10.0,
                         transport: httpx.AsyncBaseTransport | None = None) -> tuple[int, dict[str, Any]]:
    """(major, info): JSON-RPC ``common.version``, or ``GET /web/version`` where /jsonrpc is missing.

    ``common.version`` first: every Odoo up to 19 serves it at once, while an Odoo 16
    has no /web/version and renders its 404 page slowly (10-18 s on a real 16.0),
    which made every connect and every probe of a sink wait for it.
    """
    url = url.rstrip("/")
    from gateway.sinks.odoo.client import OdooClient
    probe = OdooClient(url, "", "", "", timeout=timeout, transport=transport)
    try:
        info = await probe.version()
        if isinstance(info, dict):
            return major_of(info), info
    except (AuthDeliveryError, PermanentDeliveryError):
        pass  # no JSON-RPC here (a 404, a refusal): Odoo 19+ may have it switched off
    finally:
        await probe.close()
    async with new_http(timeout, transport) as http:
        resp = await send(http, "GET", f"{url}/web/version", "GET /web/version")
        if resp.status_code != 200:
            raise not_odoo_reply(resp, "GET /web/version")
        try:
            info = resp.json()
        except ValueError:
            info = None
        if not isinstance(info, dict) or not ("version" in info or "version_info" in info):
            raise TransientDeliveryError(f"unexpected reply to GET /web/version from {url}: {excerpt(resp)!r}")
        return major_of(info), info


async def connect(url: str, database: str, login: str, api_key: str, timeout: float = 10.0,
                  protocol: str = "auto", transport: httpx.AsyncBaseTransport | None = None
                  ) -> tuple[OdooRpc, int]:
    """An Odoo client for ``protocol`` and the server's major version.

    ``auto`` asks the version first and picks ``json2`` for Odoo 19 and later, ``jsonrpc``
    before.  The client is not authenticated yet (``execute_kw`` does it on first use).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown Odoo protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    major, _info = await detect_version(url, timeout, transport)
    if protocol == "auto":
        protocol = "json2" if major >= 19 else "jsonrpc"
    if protocol == "json2" and major < 19:
        raise AuthDeliveryError(f"Odoo {major} at {url} has no JSON-2 API (Odoo 19 and later): "
                                "use protocol jsonrpc or xmlrpc")
    if protocol == "json2":
        from gateway.sinks.odoo.json2 import Json2Client
        client: OdooRpc = Json2Client(url, database, login, api_key, timeout=timeout, transport=transport)
    elif protocol == "xmlrpc":
        from gateway.sinks.odoo.xmlrpc import XmlRpcClient
        client = XmlRpcClient(url, database, login, api_key, timeout=timeout, transport=transport)
    else:
        from gateway.sinks.odoo.client import OdooClient
        client = OdooClient(url, database, login, api_key, timeout=timeout, transport=transport)
    log.info("event=odoo_protocol url=%s version=%s protocol=%s", url, major, protocol)
    return client, major


class LazyClient(OdooRpc):
    """The wire chosen on first use: ``connect`` runs then, so a sink can start while Odoo is down.

    Every method delegates to the connected client; ``close`` drops it, and the
    next call connects (and detects the version) again.
    """

    def __init__(self, url: str, database: str, login: str, api_key: str, timeout: float = 10.0,
                 protocol: str = "auto", transport: httpx.AsyncBaseTransport | None = None) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown Odoo protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
        self._args = (url, database, login, api_key, timeout, protocol, transport)
        self._client: OdooRpc | None = None
        self.major: int | None = None

    async def _get(self) -> OdooRpc:
        if self._client is None:
            self._client, self.major = await connect(*self._args)
        return self._client

    @property
    def protocol(self) -> str:  # type: ignore[override]
        return self._client.protocol if self._client else self._args[5]

    @property
    def uid(self) -> int | None:  # type: ignore[override]
        return self._client.uid if self._client else None

    @uid.setter
    def uid(self, value: int | None) -> None:
        if self._client is not None:
            self._client.uid = value

    async def version(self) -> dict[str, Any]:
        return await (await self._get()).version()

    async def authenticate(self) -> int:
        return await (await self._get()).authenticate()

    async def execute_kw(self, model: str, method: str, args: list[Any],
                         kwargs: dict[str, Any] | None = None) -> Any:
        return await (await self._get()).execute_kw(model, method, args, kwargs)

    def set_api_key(self, api_key: str) -> None:
        self._args = (*self._args[:3], api_key, *self._args[4:])
        if self._client is not None:
            self._client.set_api_key(api_key)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
