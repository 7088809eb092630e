"""Faults injected into the sandbox at run time, for tests and rehearsals.

Owns the fault switchboard: which faults are on, for how many more requests,
and the reverse proxy's error page.  Eight kinds, freely combined:

- ``latency`` (seconds): the reply is held back that long;
- ``http_status`` (400-599, typically 502/503/504): an HTML error page with that
  status instead of Odoo's reply, as nginx answers when Odoo is down or slow;
- ``drop_connection``: the socket is closed without any reply;
- ``serialization_failure``: model calls (execute_kw, JSON-2) fail as Odoo does
  when PostgreSQL's serialization failure survives its five tries: rolled back,
  ``psycopg2.errors.SerializationFailure`` "could not serialize access due to
  concurrent update";
- ``pool_error``: model calls fail before running, as when Odoo restarts and its
  connection pool refuses a cursor: ``psycopg2.pool.PoolError`` "The Connection
  Pool Is Full";
- ``connection_closed`` / ``cursor_closed``: model calls run but are rolled back
  with ``psycopg2.InterfaceError`` "connection already closed" / "Cursor already
  closed", as when Odoo stops mid-request (its pool closes every connection);
- ``bad_key``: every credential is refused (authenticate answers false,
  execute_kw AccessDenied, JSON-2 401) as after a revoked API key.

``count`` N limits them to the next N requests (every HTTP request the sandbox
serves counts, whatever its kind, except ``/sandbox/faults`` itself); without
``count`` they last until cleared by setting none (``{}``).  How the faults
reach the wire is the server's and the service's business, not this module's.
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

_FLAGS = ("drop_connection", "serialization_failure", "pool_error", "connection_closed", "cursor_closed", "bad_key")
_KINDS = {"latency", "http_status", *_FLAGS}

_REASONS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out",
            500: "Internal Server Error", 429: "Too Many Requests"}


@dataclass(frozen=True)
class FaultSet:
    """The faults applied to one request."""

    latency: float = 0.0
    http_status: int | None = None
    drop_connection: bool = False
    serialization_failure: bool = False
    pool_error: bool = False
    connection_closed: bool = False
    cursor_closed: bool = False
    bad_key: bool = False

    def __bool__(self) -> bool:
        return bool(self.latency or self.http_status or any(getattr(self, flag) for flag in _FLAGS))


def parse(settings: dict[str, Any]) -> tuple[FaultSet, int | None]:
    """Validate ``{"latency": ..., "count": ...}``; raises ValueError with a readable reason."""
    unknown = set(settings) - _KINDS - {"count"}
    if unknown:
        raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(_KINDS))}, count")
    latency = settings.get("latency") or 0.0
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not 0 <= latency <= 600:
        raise ValueError("latency: seconds between 0 and 600")
    status = settings.get("http_status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599):
        raise ValueError("http_status: an HTTP error status between 400 and 599")
    for flag in _FLAGS:
        if not isinstance(settings.get(flag, False), bool):
            raise ValueError(f"{flag}: true or false")
    count = settings.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError("count: a positive number of requests (omit it for 'until cleared')")
    faults = FaultSet(latency=float(latency), http_status=status,
                      **{flag: settings.get(flag, False) for flag in _FLAGS})
    return faults, count


class Faults:
    """The sandbox's current faults; thread-safe, one ``take`` per served request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults = FaultSet()
        self._left: int | None = None
        self.stopping = threading.Event()  # cuts injected latency short when the sandbox stops

    def set(self, **settings: Any) -> dict[str, Any]:
        faults, count = parse(settings)
        with self._lock:
            self._faults, self._left = (faults, count) if faults else (FaultSet(), None)
            return self._describe()

    def clear(self) -> dict[str, Any]:
        return self.set()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return self._describe()

    def _describe(self) -> dict[str, Any]:
        active = {k: v for k, v in asdict(self._faults).items() if v}
        return {**active, "count": self._left} if active else {}

    def take(self) -> FaultSet:
        """The faults for the request being served, counting it against ``count``."""
        with self._lock:
            faults = self._faults
            if faults and self._left is not None:
                self._left -= 1
                if self._left <= 0:
                    self._faults, self._left = FaultSet(), None
            return faults


def proxy_error_page(status: int) -> bytes:
    """The HTML page a reverse proxy (nginx) answers when its upstream fails."""
    title = f"{status} {_REASONS.get(status, 'Error')}"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n").encode()
