"""Odoo's exception types and how Odoo 17 puts them on the wire.

Owns the exception classes a real server raises (``odoo.exceptions.*`` and the
``psycopg2.OperationalError`` of an unknown database, named with the same module
and class so clients classify them the same way) and their renderings:
the JSON-RPC ``error`` member, the ``/xmlrpc/2/`` fault with integer codes,
the legacy ``/xmlrpc/`` fault with string codes and, for Odoo 19's JSON-2 API,
the HTTP status (``http_status`` of odoo/exceptions.py, 500 for anything else)
with ``serialize_exception``'s body.  Also the psycopg2 errors Odoo lets
through: an unknown database, a serialization failure that survived
Odoo's five tries (service/model.py ``retrying``), and what a restarting Odoo
answers (``psycopg2.pool.PoolError``, ``psycopg2.InterfaceError``).  Tracebacks are shortened to
their final exception line, exactly as the reference captures were; no
sandbox internals leak into replies.  It does not decide *when* to raise.
"""
from __future__ import annotations

import traceback
import xmlrpc.client
from typing import Any

TRACEBACK_HEAD = "Traceback (most recent call last):\n  ...\n"

# XML-RPC fault codes of odoo/addons/base/controllers/rpc.py
FAULT_APPLICATION_ERROR = 1
FAULT_WARNING = 2
FAULT_ACCESS_DENIED = 3
FAULT_ACCESS_ERROR = 4


class UserError(Exception):
    """A business-rule refusal meant for a human (fault 2, JSON-2 422)."""

    http_status = 422


class RedirectWarning(Exception):
    """A warning carrying an action (fault 2); unused by the sandbox's models."""


class AccessDenied(UserError):
    """Bad credentials (fault 3)."""

    http_status = 403

    def __init__(self, message: str = "Access Denied") -> None:
        super().__init__(message)


class AccessError(UserError):
    """The user may not do this (fault 4, JSON-2 403)."""

    http_status = 403


class MissingError(UserError):
    """The record does not exist (fault 2, JSON-2 404)."""

    http_status = 404


class ValidationError(UserError):
    """A constraint failed (fault 2)."""


for _cls in (UserError, RedirectWarning, AccessDenied, AccessError, MissingError, ValidationError):
    _cls.__module__ = "odoo.exceptions"


class OperationalError(Exception):
    """What Odoo raises when the requested database does not exist."""


OperationalError.__module__ = "psycopg2"


class SerializationFailure(OperationalError):
    """psycopg2.errors.SerializationFailure (a TransactionRollbackError, hence an OperationalError).

    Odoo retries the whole call up to five times (MAX_TRIES_ON_CONCURRENCY_FAILURE)
    and then lets the last one through: over JSON-RPC its name, over XML-RPC
    fault 1 with the traceback, over JSON-2 HTTP 500.
    """

    def __init__(self, message: str = "could not serialize access due to concurrent update\n") -> None:
        super().__init__(message)


SerializationFailure.__module__ = "psycopg2.errors"


class PoolError(Exception):
    """psycopg2.pool.PoolError: Odoo's connection pool refuses a cursor (sql_db.py ConnectionPool.borrow),
    as while Odoo restarts or under load.  Not an OperationalError: Odoo does not retry it."""

    def __init__(self, message: str = "The Connection Pool Is Full") -> None:
        super().__init__(message)


PoolError.__module__ = "psycopg2.pool"


class InterfaceError(Exception):
    """psycopg2.InterfaceError: the connection or cursor was closed under the request (Odoo stopping:
    psycopg2's "connection already closed", sql_db.py's "Cursor already closed")."""


InterfaceError.__module__ = "psycopg2"


def unique_violation(constraint: str, columns: str, values: str) -> ValidationError:
    """How Odoo 17 reports a unique index that is not a declared _sql_constraint (_as_validation_error)."""
    return ValidationError('The operation cannot be completed: duplicate key value violates unique constraint '
                           f'"{constraint}"\nDETAIL:  Key ({columns})=({values}) already exists.\n')


def unknown_database(db: Any) -> OperationalError:
    """The error PostgreSQL gives Odoo for a database that does not exist."""
    return OperationalError(
        f'connection to server at "127.0.0.1", port 5432 failed: FATAL:  database "{db}" does not exist\n')


def exception_name(exc: BaseException) -> str:
    """``module.Class`` as Odoo's serialize_exception reports it (``builtins.ValueError``)."""
    cls = type(exc)
    return f"{cls.__module__}.{cls.__name__}" if cls.__module__ else cls.__name__


def short_traceback(exc: BaseException) -> str:
    """A traceback shortened to its final line, as in the captures."""
    return TRACEBACK_HEAD + "".join(traceback.format_exception_only(type(exc), exc))


def jsonrpc_error(exc: BaseException) -> dict[str, Any]:
    """The ``error`` member of a JSON-RPC reply (odoo/http.py serialize_exception)."""
    return {
        "code": 200,
        "message": "Odoo Server Error",
        "data": {
            "name": exception_name(exc),
            "debug": short_traceback(exc),
            "message": str(exc),
            "arguments": list(exc.args),
            "context": {},
        },
    }


def json2_status(exc: BaseException) -> int:
    """The HTTP status of a JSON-2 error (Json2RpcDispatcher.handle_error): http_status or 500."""
    return getattr(exc, "http_status", 500) if isinstance(exc, UserError) else 500


def json2_error(exc: BaseException, *, message: str | None = None,
                arguments: list[Any] | None = None) -> dict[str, Any]:
    """Odoo 19's serialize_exception body, keys in Odoo's order."""
    return {"name": exception_name(exc), "message": str(exc) if message is None else message,
            "arguments": list(exc.args) if arguments is None else arguments, "context": {},
            "debug": short_traceback(exc)}


def xmlrpc_fault(exc: BaseException) -> xmlrpc.client.Fault:
    """The ``/xmlrpc/2/`` fault (xmlrpc_handle_exception_int): the order of the tests matters."""
    if isinstance(exc, RedirectWarning):
        return xmlrpc.client.Fault(FAULT_WARNING, str(exc))
    if isinstance(exc, AccessError):
        return xmlrpc.client.Fault(FAULT_ACCESS_ERROR, str(exc))
    if isinstance(exc, AccessDenied):
        return xmlrpc.client.Fault(FAULT_ACCESS_DENIED, str(exc))
    if isinstance(exc, UserError):
        return xmlrpc.client.Fault(FAULT_WARNING, str(exc))
    return xmlrpc.client.Fault(FAULT_APPLICATION_ERROR, short_traceback(exc))


def xmlrpc_legacy_fault(exc: BaseException) -> xmlrpc.client.Fault:
    """The legacy ``/xmlrpc/`` fault (xmlrpc_handle_exception_string): string fault codes."""
    if isinstance(exc, RedirectWarning):
        return xmlrpc.client.Fault("warning -- Warning\n\n" + str(exc), "")
    if isinstance(exc, MissingError):
        return xmlrpc.client.Fault("warning -- MissingError\n\n" + str(exc), "")
    if isinstance(exc, AccessError):
        return xmlrpc.client.Fault("warning -- AccessError\n\n" + str(exc), "")
    if isinstance(exc, AccessDenied):
        return xmlrpc.client.Fault("AccessDenied", str(exc))
    if isinstance(exc, UserError):
        return xmlrpc.client.Fault("warning -- UserError\n\n" + str(exc), "")
    return xmlrpc.client.Fault(str(exc), short_traceback(exc))
