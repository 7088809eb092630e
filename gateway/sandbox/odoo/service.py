"""The RPC services of Odoo (``common``, ``object``, ``db``) over the sandbox database.

Owns dispatch_rpc as odoo/http.py and odoo/service/*.py do it: the database
check first (an unknown name is psycopg2's OperationalError), credentials on
every execute_kw (AccessDenied), private method names refused (AccessError),
unknown models (UserError), then ``call_kw`` with Odoo's calling conventions
(model-level methods, create returning an id or a list, recordsets downgraded
to ids, ``context`` taken from the keyword arguments).  Each call is one
transaction under one lock: on any exception the database is restored, on
success with changes ``on_commit`` runs (persistence) before the reply is built.
The version reported is the sandbox's (16.0 to 19.0).  Injected faults of the
request being served (``local.faults``) refuse credentials (``bad_key``) or
roll a model call back with a serialization failure, as Odoo's ``retrying``
does after its last try.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Callable

from .errors import (AccessDenied, AccessError, InterfaceError, PoolError, SerializationFailure, UserError,
                     unknown_database)
from .faults import FaultSet
from .models.base import check_password
from .orm import BaseModel, Database, Environment, rpc_method
from .versions import DEFAULT, OdooVersion

VERSION_INFO = DEFAULT.exp_version()  # Odoo 17's, kept for importers; a service reports its own version
ADMIN_UID = 2
_PRIVATE = re.compile(r"^(_.*|init)$")


def _named(fn: Callable, name: str) -> Callable:
    """Give a closure Odoo's function name so argument TypeErrors read as Odoo's."""
    fn.__name__ = fn.__qualname__ = name
    return fn


class OdooService:
    """One database served through Odoo's RPC services."""

    def __init__(self, db: Database, registry: Mapping[str, type[BaseModel]], api_key: str,
                 on_commit: Callable[[], None] | None = None, version: OdooVersion = DEFAULT) -> None:
        self.db = db
        self.registry = registry
        self.api_key = api_key
        #: every API key of the admin user Odoo accepts now (a rotation adds one, a revocation removes one)
        self.api_keys: set[str] = {api_key}
        self.version = version
        self.on_commit = on_commit or (lambda: None)
        self.lock = threading.RLock()
        self.local = threading.local()  # .faults: the FaultSet of the request this thread serves

    def faults(self) -> FaultSet:
        return getattr(self.local, "faults", None) or FaultSet()

    # -- helpers ------------------------------------------------------------
    def check_db(self, db: Any) -> None:
        if db != self.db.name:
            raise unknown_database(db)

    def check_credentials(self, uid: int, password: Any) -> None:
        if self.faults().bad_key:
            raise AccessDenied()
        row = self.db.tables.get("res.users", {}).get(uid)
        if not row or not row.get("active", True):
            raise AccessDenied()
        if uid == ADMIN_UID:
            if password not in self.api_keys:
                raise AccessDenied()
        elif not check_password(password, row.get("__password_hash")):
            raise AccessDenied()

    def authenticate(self, db: Any, login: Any, password: Any) -> int | bool:
        self.check_db(db)
        if self.faults().bad_key:
            return False
        with self.lock:
            for uid, row in self.db.tables.get("res.users", {}).items():
                if row.get("login") == login and row.get("active", True):
                    try:
                        self.check_credentials(uid, password)
                    except AccessDenied:
                        return False
                    return uid
        return False

    def uid_for_api_key(self, key: Any) -> int | None:
        """The user behind a bearer API key (JSON-2): the admin's is the sandbox's key; any
        other user's password stands for that user's API key (the sandbox keeps no key table)."""
        if self.faults().bad_key or not isinstance(key, str) or not key:
            return None
        with self.lock:
            for uid, row in self.db.tables.get("res.users", {}).items():
                if not row.get("active", True):
                    continue
                try:
                    self.check_credentials(uid, key)
                except AccessDenied:
                    continue
                return uid
        return None

    # -- dispatch -------------------------------------------------------------
    def dispatch_rpc(self, service_name: str, method: str, params: Any) -> Any:
        dispatch = {"common": self.dispatch_common, "db": self.dispatch_db,
                    "object": self.dispatch_object}[service_name]
        return dispatch(method, params)

    def dispatch_common(self, method: str, params: Any) -> Any:
        exp = {
            "exp_version": _named(lambda: self.version.exp_version(), "exp_version"),
            "exp_login": _named(lambda db, login, password: self.authenticate(db, login, password), "exp_login"),
            "exp_authenticate": _named(lambda db, login, password, user_agent_env:
                                       self.authenticate(db, login, password), "exp_authenticate"),
            "exp_about": _named(lambda extended=False: ["See http://openerp.com", self.version.server_version]
                                if extended else "See http://openerp.com", "exp_about"),
        }
        fn = exp.get("exp_" + str(method))
        if fn is None:
            raise Exception("Method not found: %s" % method)
        return fn(*params)

    def dispatch_db(self, method: str, params: Any) -> Any:
        exp = {
            "exp_list": _named(lambda document=False: [self.db.name], "exp_list"),
            "exp_db_exist": _named(lambda db_name: db_name == self.db.name, "exp_db_exist"),
            "exp_server_version": _named(lambda: self.version.server_version, "exp_server_version"),
        }
        fn = exp.get("exp_" + str(method))
        if fn is None:
            raise KeyError(method)
        return fn(*params)

    def dispatch_object(self, method: str, params: Any) -> Any:
        db, uid, passwd = params[0], int(params[1]), params[2]
        self.check_db(db)
        with self.lock:
            self.check_credentials(uid, passwd)
        if method == "execute":
            return self.execute(db, uid, *params[3:])
        if method == "execute_kw":
            def execute_kw(db: str, uid: int, obj: str, method: str, args: Any, kw: Any = None) -> Any:
                return self.execute(db, uid, obj, method, *args, **(kw or {}))
            return _named(execute_kw, "execute_kw")(db, uid, *params[3:])
        raise NameError("Method not available %s" % method)

    def execute(self, db: str, uid: int, obj: str, method: str, *args: Any, **kw: Any) -> Any:
        if _PRIVATE.match(method):
            raise AccessError("Private methods (such as %s) cannot be called remotely." % method)
        with self.transaction():
            env = Environment(self.registry, self.db, uid, {})
            recs = env.get(obj)
            if recs is None:
                raise UserError("Object %s doesn't exist" % obj)
            return call_kw(recs, method, list(args), kw)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One model call: serialized, rolled back on any exception, persisted when it changed data."""
        faults = self.faults()
        if faults.pool_error:
            raise PoolError()  # no cursor: nothing runs
        with self.lock:
            snap = self.db.snapshot()
            try:
                yield
                if faults.serialization_failure:
                    raise SerializationFailure()  # the fifth try failed too: Odoo gives up
                if faults.connection_closed or faults.cursor_closed:  # Odoo stopped under the call: no commit
                    raise InterfaceError("connection already closed" if faults.connection_closed
                                         else "Cursor already closed")
            except BaseException:
                self.db.restore(snap)
                raise
            if self.db.version != snap[3]:
                self.on_commit()


def call_kw(model: BaseModel, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """odoo.api.call_kw: pick the calling convention from the method's decorator."""
    method = rpc_method(model, name)
    api = getattr(method, "_api", None)
    kwargs = dict(kwargs)
    context = kwargs.pop("context", None)
    recs = model.with_context(context or {})
    if api == "model":
        result = method(recs, *args, **kwargs)
    elif api == "model_create":
        result = method(recs, *args, **kwargs)
        first = args[0] if args else kwargs.get("vals_list")
        return result.id if isinstance(first, Mapping) else result.ids
    else:
        ids, args = args[0], args[1:]
        result = method(recs.browse(ids), *args, **kwargs)
    if isinstance(result, BaseModel):
        # @api.returns(..., lambda value: value.id) methods (message_post) give one id over RPC
        return result.id if getattr(method, "_returns_id", False) else result.ids
    return result
