"""Odoo 19's JSON-2 API: ``POST /json/2/<model>/<method>`` with a bearer API key.

Follows addons/web/controllers/json2.py and ir.http ``_auth_method_bearer`` of
Odoo 19, in their order: the route (anything else under /json/2 is a 404 "Did
you mean POST /json/2/<model>/<method>?"), the ``X-Odoo-Database`` header, the
bearer key (401 "Invalid apikey", or 401 "User not authenticated ..." without
one), the JSON object body (400), the model (404 "the model 'x' does not
exist"), the public method (403 for a private one such as ``check_access``, 404 "The method 'm.x' does
not exist"), ids on a model-level method (422), the method's signature bound to
the named arguments (422 with Python's TypeError text), then the call in one
transaction; a recordset result becomes its ids.  Errors answer
``serialize_exception``'s body with ``http_status`` (422 UserError and
ValidationError, 403 AccessError/AccessDenied, 404 MissingError) or 500 for
anything else (ValueError, psycopg2 errors).  Only the server calls this module,
and only when the sandbox plays Odoo 19 or later.
"""
from __future__ import annotations

import inspect
import json
import re
from http import HTTPStatus
from collections.abc import Mapping
from typing import Any

from .errors import TRACEBACK_HEAD, AccessError, json2_error, json2_status
from .orm import BaseModel, Environment, rpc_method
from .service import OdooService

ROUTE = re.compile(r"^/json/2/([^/]+)/([^/]+)$")


class HTTPError(Exception):
    """A werkzeug HTTPException: ``werkzeug.exceptions.<name>`` with its description and code."""

    def __init__(self, name: str, code: int, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.headers = code, description, headers or {}
        self.name = name

    def body(self) -> dict[str, Any]:
        body = json2_error(self, message=self.description, arguments=[self.description, self.code])
        body["name"] = f"werkzeug.exceptions.{self.name}"
        body["debug"] = (f"{TRACEBACK_HEAD}{body['name']}: {self.code} {HTTPStatus(self.code).phrase}: "
                         f"{self.description}\n")
        return body


def _not_found(description: str) -> HTTPError:
    return HTTPError("NotFound", 404, description)


def _unprocessable(description: str) -> HTTPError:
    return HTTPError("UnprocessableEntity", 422, description)


def _unauthorized(description: str) -> HTTPError:
    return HTTPError("Unauthorized", 401, description, {"WWW-Authenticate": "Bearer"})


Answer = tuple[int, Any, dict[str, str]]


class Json2:
    """Serves JSON-2 requests for one OdooService."""

    def __init__(self, service: OdooService) -> None:
        self.service = service

    @staticmethod
    def rule(method: str, path: str) -> str:
        """The route a request under /json/2 matches (for the wrong-content-type message)."""
        return "/json/2/<model>/<method>" if method == "POST" and ROUTE.match(path) else "/json/2/<path:subpath>"

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """(status, JSON payload, extra headers) for one application/json request under /json/2."""
        try:
            return 200, self._serve(method, path, headers, body), {}
        except HTTPError as exc:
            return exc.code, exc.body(), exc.headers
        except Exception as exc:  # noqa: BLE001 - every failure is an HTTP status with Odoo's body
            return json2_status(exc), json2_error(exc), {}

    def _serve(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Any:
        match = ROUTE.match(path)
        if method != "POST" or not match:
            raise _not_found("Did you mean POST /json/2/<model>/<method>?")
        model_name, method_name = match.groups()
        database = headers.get("X-Odoo-Database")
        if database is not None and database != self.service.db.name:
            raise _not_found(f"database {database!r} not found")
        uid = self._authenticate(headers.get("Authorization"))
        params = self._params(body)
        ids = params.pop("ids", None) or []
        context = params.pop("context", None) or {}
        with self.service.transaction():
            env = Environment(self.service.registry, self.service.db, uid, {})
            model = env.get(model_name)
            if model is None:
                raise _not_found(f"the model {model_name!r} does not exist")
            model = model.with_context(context)
            func = self._public_method(model, method_name)
            if getattr(func, "_api", None) in ("model", "model_create") and ids:
                raise _unprocessable(f"cannot call {model_name}.{method_name} with ids")
            records = model.browse(ids)
            try:
                inspect.signature(func).bind(records, **params)
            except TypeError as exc:
                raise _unprocessable(exc.args[0]) from None
            result = func(records, **params)
        return result.ids if isinstance(result, BaseModel) else result

    def _authenticate(self, authorization: str | None) -> int:
        token = None
        if authorization and (m := re.match(r"^bearer\s+(.+)$", authorization, re.IGNORECASE)):
            token = m.group(1)
        if not token:
            raise _unauthorized("User not authenticated, use an API Key with a Bearer Authorization header.")
        uid = self.service.uid_for_api_key(token)
        if not uid:
            raise _unauthorized("Invalid apikey")
        return uid

    @staticmethod
    def _params(body: bytes) -> dict[str, Any]:
        if not body:
            return {}
        try:
            params = json.loads(body)
        except ValueError as exc:
            raise HTTPError("BadRequest", 400, f"could not parse the body as json: {exc.args[0]}") from None
        if not isinstance(params, dict):
            raise HTTPError("BadRequest", 400, "could not parse the body, expecting a json object")
        return params

    @staticmethod
    def _public_method(model: BaseModel, name: str) -> Any:
        """odoo.service.model.get_public_method."""
        if name.startswith("_"):
            raise AccessError(f"Private methods (such as '{model._name}.{name}') cannot be called remotely.")
        func = getattr(type(model), name, None)
        if not callable(func) or isinstance(inspect.getattr_static(type(model), name, None), property):
            raise _not_found(f"The method '{model._name}.{name}' does not exist")
        return rpc_method(model, name)  # @api.private methods (check_access) are refused
