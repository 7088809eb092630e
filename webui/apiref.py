"""The OpenAPI document as a page a person reads: each path, its methods, parameters, body and answers.

It owns turning `webui.openapi.document()` into plain rows for the
`apiref.html` template (the route is in `webui.pages`); the document itself,
and what it says, stay `webui.openapi`'s. Schemas are shown one level deep:
a body's fields with their types, a `$ref` by its schema's name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

METHODS = ("get", "post", "put", "delete", "patch")


@dataclass
class Field:
    name: str
    where: str
    type: str
    required: bool
    description: str = ""


@dataclass
class Operation:
    method: str
    path: str
    anchor: str
    summary: str
    params: list[Field] = field(default_factory=list)
    body: list[Field] = field(default_factory=list)
    answers: list[tuple[str, str]] = field(default_factory=list)
    csrf: bool = False


def type_of(schema: dict[str, Any] | None) -> str:
    """A schema's type in a few words: `string`, `array of HistoryEntry`, `number or null`, `"merge" | "replace"`."""
    if not schema:
        return "any"
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "enum" in schema:
        return " | ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in schema["enum"])
    kind = schema.get("type", "object")
    kinds = kind if isinstance(kind, list) else [kind]
    words = [f"array of {type_of(schema.get('items'))}" if k == "array" else str(k) for k in kinds]
    return " or ".join(words)


def _fields(schema: dict[str, Any], where: str) -> list[Field]:
    required = set(schema.get("required", []))
    return [Field(name, where, type_of(s), name in required, str(s.get("description", "")))
            for name, s in (schema.get("properties") or {}).items()]


def operations(doc: dict[str, Any]) -> list[Operation]:
    """Every operation of the document, by path and then in the order GET, POST, PUT, DELETE."""
    shared = doc.get("components", {}).get("parameters", {})
    out = []
    for path, item in sorted(doc["paths"].items()):
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            o = Operation(method.upper(), path, re.sub(r"[^a-z0-9]+", "-", f"{method} {path}".lower()).strip("-"),
                          str(op.get("summary", "")))
            for p in op.get("parameters", []):
                if "$ref" in p:
                    p = shared.get(p["$ref"].rsplit("/", 1)[-1], {})
                    o.csrf = o.csrf or p.get("name") == "X-CSRF-Token"
                o.params.append(Field(p.get("name", "?"), p.get("in", "?"), type_of(p.get("schema")),
                                      bool(p.get("required")), str(p.get("description", ""))))
            body = (op.get("requestBody") or {}).get("content", {})
            if "application/json" in body:
                schema = body["application/json"].get("schema") or {}
                o.body = _fields(schema, "body") or [Field("(body)", "body", type_of(schema), True)]
            elif body:
                o.body = [Field("(body)", "body", ", ".join(body), True)]
            o.answers = [(code, str(r.get("description", ""))) for code, r in sorted(op.get("responses", {}).items())]
            out.append(o)
    return out
