"""The API contract: /api/v1/openapi.json validates, matches the app's routes, and the running API answers it.

The document is compared with the Flask url_map both ways (every /api/v1 and
/metrics rule is described with the same methods; every described path is a
route), then schemathesis sends generated requests to a running gateway and
checks that no answer is a server error and every answer has a documented
status, content type and shape. Reads run against the module's gateway;
changes run against a gateway of their own, with the session's CSRF token.
"""
from __future__ import annotations

import json
import re
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from tests.webui.conftest import Console, Gateway, admin_console, start_gateway
from tests.webui.test_security import PARAM, app_routes, console_ready, expand_any
from webui import openapi
from webui.security import SESSION_COOKIE

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
DOC = openapi.document()


def documented(doc: dict[str, Any]) -> dict[str, set[str]]:
    return {path: {m.upper() for m in item if m in HTTP_METHODS} for path, item in doc["paths"].items()}


def routed() -> dict[str, set[str]]:
    """The app's /api/v1 and /metrics routes as OpenAPI paths: any() expanded, other arguments as {name}."""
    out: dict[str, set[str]] = defaultdict(set)
    for route in app_routes():
        if route.rule.startswith("/api/v1/") or route.rule == "/metrics":
            for path in expand_any(route.rule):
                out[PARAM.sub(lambda m: "{" + m["name"] + "}", path)] |= route.methods
    return dict(out)


#: changes whose documented effect ends every session (the process starts again): their own test
#: (tests/webui/test_system_device.py) checks the answer and the effect
NOT_FUZZED = {("POST", "/api/v1/system/restart")}


def operations(doc: dict[str, Any], safe: bool) -> list[tuple[str, str]]:
    return [(method, path) for path, methods in sorted(documented(doc).items()) for method in sorted(methods)
            if (method == "GET") == safe and (method, path) not in NOT_FUZZED]


# -- the document -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def admin(gateway: Gateway) -> Iterator[Console]:
    c = admin_console(console_ready(gateway))
    yield c
    c.close()


def test_the_served_document_validates_and_is_the_one_described(gateway: Gateway, admin: Console) -> None:
    resp = admin.api("GET", "/openapi.json")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    doc = resp.json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert doc == json.loads(json.dumps(DOC)), "the gateway serves webui.openapi.document()"


def test_the_document_needs_a_session_too(gateway: Gateway) -> None:
    anon = Console(gateway)
    assert anon.http.get("/api/v1/openapi.json").status_code == 401


def test_every_api_route_is_documented_with_its_methods_and_nothing_else() -> None:
    doc, app = documented(DOC), routed()
    missing = {f"{m} {p}" for p, ms in app.items() for m in ms - doc.get(p, set())}
    extra = {f"{m} {p}" for p, ms in doc.items() for m in ms - app.get(p, set())}
    assert not missing, f"routes the document does not describe: {sorted(missing)}"
    assert not extra, f"documented operations the app does not have: {sorted(extra)}"


def test_path_parameters_are_declared_with_the_converters_type() -> None:
    int_args = {m["name"] for r in app_routes() for m in PARAM.finditer(r.rule) if m["conv"] == "int"}
    for path, item in DOC["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method in set(item) & HTTP_METHODS:
            params = [p for p in item[method].get("parameters", []) if "$ref" not in p and p["in"] == "path"]
            assert {p["name"] for p in params} == names, f"{method} {path}: {params}"
            for p in params:
                assert p["required"] is True
                assert p["schema"]["type"] == ("integer" if p["name"] in int_args else "string"), (path, p)


def test_every_change_declares_the_csrf_header_and_every_operation_its_refusals() -> None:
    csrf = {"$ref": "#/components/parameters/Csrf"}
    for path, item in DOC["paths"].items():
        for method in set(item) & HTTP_METHODS:
            op = item[method]
            assert "401" in op["responses"], f"{method} {path} does not say it needs a session"
            if method != "get":
                assert csrf in op.get("parameters", []), f"{method} {path} does not declare X-CSRF-Token"
                assert "403" in op["responses"], f"{method} {path} does not say it can be refused"
                assert "422" in op["responses"] or "requestBody" not in op, f"{method} {path}: no 422"


# -- the API answers the document ---------------------------------------------------------------

def _fuzz(gw: Gateway, console: Console, method: str, path: str, examples: int) -> None:
    schema = schemathesis.openapi.from_dict(DOC)
    operation = schema[path][method]
    cookies = {SESSION_COOKIE: console.http.cookies[SESSION_COOKIE]}
    headers = {"X-CSRF-Token": console.csrf} if method != "GET" else None

    @given(case=operation.as_strategy(headers=headers))
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=gw.base_url, cookies=cookies, verify=False, timeout=60, checks=CHECKS)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # urllib3's InsecureRequestWarning: the certificate is self-signed
        check()


@pytest.mark.parametrize("method, path", operations(DOC, safe=True))
def test_reads_answer_as_documented(gateway: Gateway, admin: Console, method: str, path: str) -> None:
    _fuzz(gateway, admin, method, path, examples=12)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Console]]:
    """A gateway of its own for generated changes (they must not disturb the other tests' state)."""
    tmp: Path = tmp_path_factory.mktemp("scratch")
    for gw in start_gateway(tmp):
        c = admin_console(console_ready(gw))
        yield gw, c
        c.close()


@pytest.mark.parametrize("method, path", operations(DOC, safe=False))
def test_changes_answer_as_documented(scratch: tuple[Gateway, Console], method: str, path: str) -> None:
    gw, console = scratch
    _fuzz(gw, console, method, path, examples=8)
    assert console.api("GET", "/me").status_code == 200, "the generated change ended the test's own session"
