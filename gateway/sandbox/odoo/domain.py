"""Odoo search domains and ``order`` strings, evaluated in memory.

Owns the prefix notation ('&', '|', '!' with implicit '&'), leaf validation
with Odoo's error texts, the operators =, !=, <, <=, >, >=, =?, in, not in,
like, not like, ilike, not ilike, =like, =ilike, any, not any (child_of and
parent_of act as 'in': no sandbox model is hierarchical), dotted paths through
many2one fields, many2one compared by id (or by name when given a string, as
Odoo's name_search fallback does), and NULL semantics (negative operators match
empty values).  It also parses and applies ``order``.  Records are read
through ``BaseModel.value``; nothing here writes.
"""
from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .orm import BaseModel

TERM_OPERATORS = ("=", "!=", "<=", "<", ">", ">=", "=?", "=like", "=ilike", "like", "not like",
                  "ilike", "not ilike", "in", "not in", "child_of", "parent_of", "any", "not any")
NEGATIVE = {"!=", "not like", "not ilike", "not in", "not any"}
TRUE_LEAF = (1, "=", 1)
FALSE_LEAF = (0, "=", 1)
ARITY = {"!": 1, "&": 2, "|": 2}

_ORDER_RE = re.compile(r"^(\s*(?P<field>[a-z0-9_]+|\"[a-z0-9_]+\")\s*(?P<direction>(asc|desc))?"
                       r"\s*(?P<nulls>(nulls first|nulls last))?\s*(,|$))+(?<!,)$", re.I)
_TERM_RE = re.compile(r"\s*(?P<field>[a-z0-9_]+|\"[a-z0-9_]+\")\s*(?P<direction>asc|desc)?"
                      r"\s*(?P<nulls>nulls first|nulls last)?\s*", re.I)


def normalize(domain: Any) -> list[Any]:
    """odoo.osv.expression.normalize_domain: add the implicit '&' operators."""
    if not domain:
        return [TRUE_LEAF]
    if not isinstance(domain, (list, tuple)):
        raise ValueError(f"Invalid domain: {domain!r}")
    result: list[Any] = []
    expected = 1
    for token in domain:
        if expected == 0:
            result[0:0] = ["&"]
            expected = 1
        if isinstance(token, (list, tuple)):
            expected -= 1
            token = tuple(token)
        else:
            expected += ARITY.get(token, 0) - 1
        result.append(token)
    if expected:
        raise ValueError(f"Domain {domain} is syntactically not correct.")
    return result


def check(model: "BaseModel", domain: Any) -> list[Any]:
    """Normalize and validate a domain against a model; returns the normalized form."""
    norm = normalize(domain)
    for token in norm:
        if isinstance(token, tuple):
            _check_leaf(model, token)
        elif token not in ARITY:
            raise ValueError("Invalid leaf %s" % (token,))
    return norm


def _check_leaf(model: "BaseModel", leaf: tuple) -> None:
    if leaf in (TRUE_LEAF, FALSE_LEAF):
        return
    if len(leaf) != 3 or not isinstance(leaf[0], str) or leaf[1] not in TERM_OPERATORS:
        raise ValueError("Invalid leaf %s" % str(leaf))
    path = leaf[0].split(".")
    current = model
    for i, fname in enumerate(path):
        field = current._fields.get(fname)
        if field is None:
            raise ValueError("Invalid field %s.%s in leaf %s" % (current._name, fname, str(leaf)))
        if i < len(path) - 1:
            if not field.relational:
                raise ValueError("Invalid field %s.%s in leaf %s" % (current._name, path[i + 1], str(leaf)))
            current = current.env[field.comodel_name]
    if leaf[1] in ("any", "not any"):
        check(current.env[current._fields[path[-1]].comodel_name], leaf[2])


def matches(record: "BaseModel", norm: list[Any]) -> bool:
    """Evaluate a normalized domain on one record."""
    pos = 0

    def walk() -> bool:
        nonlocal pos
        token = norm[pos]
        pos += 1
        if token == "!":
            return not walk()
        if token == "&":
            a = walk()
            b = walk()
            return a and b
        if token == "|":
            a = walk()
            b = walk()
            return a or b
        return _leaf(record, token)

    return walk()


def _leaf(record: "BaseModel", leaf: tuple) -> bool:
    if leaf == TRUE_LEAF:
        return True
    if leaf == FALSE_LEAF:
        return False
    path, op, value = leaf
    head, _, rest = path.partition(".")
    field = record._fields[head]
    raw = record._get(head)
    if rest:
        co = record.env[field.comodel_name]
        ids = raw if isinstance(raw, list) else ([raw] if raw else [])
        hit = any(_leaf(co.browse(i), (rest, op, value)) for i in ids if co.browse(i).exists())
        if not ids and op in NEGATIVE:
            return True
        return hit
    if op in ("any", "not any"):
        co = record.env[field.comodel_name]
        ids = raw if isinstance(raw, list) else ([raw] if raw else [])
        sub = check(co, value)
        hit = any(matches(co.browse(i), sub) for i in ids)
        return hit if op == "any" else not hit
    if op == "=?":
        if value is None or value is False:
            return True
        op = "="
    if op in ("child_of", "parent_of"):
        op = "in"
    if field.type in ("many2one", "one2many", "many2many"):
        return _relational(record, field, raw, op, value)
    return _scalar(field, raw, op, value)


def _like(pattern: str, text: str, insensitive: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.S | (re.I if insensitive else 0)) is not None


def _scalar(field: Any, raw: Any, op: str, value: Any) -> bool:
    empty = raw is False or raw is None
    if field.type == "boolean":
        empty = False
    if field.type == "datetime" and isinstance(value, str) and len(value) == 10:
        value += " 00:00:00"
    if op in ("=", "!="):
        if value is False or value is None:
            hit = empty if field.type != "boolean" else raw is False
        else:
            hit = (not empty) and raw == _coerce(field, value)
        return hit if op == "=" else not hit
    if op in ("in", "not in"):
        values = value if isinstance(value, (list, tuple)) else [value]
        want_null = any(v is False or v is None for v in values)
        coerced = [_coerce(field, v) for v in values if v is not False and v is not None]
        hit = (empty and want_null) or (not empty and raw in coerced)
        return hit if op == "in" else not hit
    if op in ("like", "not like", "ilike", "not ilike", "=like", "=ilike"):
        if empty:
            return op in NEGATIVE
        text = str(raw)
        pattern = str(value) if op.startswith("=") else "%" + str(value) + "%"
        hit = _like(pattern, text, "ilike" in op)
        return not hit if op in NEGATIVE else hit
    if empty or value is False or value is None:
        return False
    try:
        v = _coerce(field, value)
        return {"<": raw < v, "<=": raw <= v, ">": raw > v, ">=": raw >= v}[op]
    except TypeError:
        return False


def _coerce(field: Any, value: Any) -> Any:
    if field.type in ("integer", "float") and isinstance(value, (int, float, str)):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _relational(record: "BaseModel", field: Any, raw: Any, op: str, value: Any) -> bool:
    ids = raw if isinstance(raw, list) else ([raw] if raw else [])
    co = record.env[field.comodel_name]
    values = value if isinstance(value, (list, tuple)) else [value]
    if op in ("like", "not like", "ilike", "not ilike", "=like", "=ilike") or any(
            isinstance(v, str) for v in values):
        name_op = {"=": "=", "!=": "=", "in": "=", "not in": "="}.get(op, op.replace("not ", ""))
        hit = any(_scalar(co._fields["display_name"], co.browse(i)._display_name(), name_op, v)
                  for i in ids for v in values if isinstance(v, str))
        return not hit if op in NEGATIVE else hit
    if op in ("=", "!=", "in", "not in"):
        want_null = any(v is False or v is None for v in values)
        wanted = {int(v) for v in values if v is not False and v is not None}
        hit = (not ids and want_null) or bool(wanted.intersection(ids))
        return hit if op in ("=", "in") else not hit
    if not ids or value is False:
        return False
    return any({"<": i < value, "<=": i <= value, ">": i > value, ">=": i >= value}[op] for i in ids)


def parse_order(model: "BaseModel", order: str | None) -> list[tuple[str, bool, bool | None]]:
    """Parse 'field [asc|desc] [nulls first|last], ...' into (field, descending, nulls_first)."""
    spec = order or model._order
    if not _ORDER_RE.match(spec):
        raise ValueError('Invalid "order" specified (%s). A valid "order" specification is a '
                         'comma-separated list of valid field names (optionally followed by asc/desc '
                         'for the direction)' % spec)
    terms = []
    for part in spec.split(","):
        m = _TERM_RE.fullmatch(part)
        assert m is not None
        fname = m.group("field").strip('"')
        if fname not in model._fields:
            raise ValueError(f"Invalid field {fname!r} on model {model._name!r}")
        desc = (m.group("direction") or "asc").lower() == "desc"
        nulls = m.group("nulls")
        terms.append((fname, desc, None if nulls is None else nulls.lower() == "nulls first"))
    return terms


def sort_ids(model: "BaseModel", ids: list[int], order: str | None) -> list[int]:
    """Sort ids like PostgreSQL would for the ORDER BY Odoo generates (NULLS LAST when ascending).

    Fields that are not stored are skipped, as Odoo 17 skips them with a warning.
    Many2one fields sort by the target model's own order.
    """
    terms = [t for t in parse_order(model, order) if model._fields[t[0]].store]
    ranks: dict[str, dict[int, int]] = {}
    for fname, _d, _n in terms:
        field = model._fields[fname]
        if field.type == "many2one":
            co = model.env[field.comodel_name]
            ranks[fname] = {i: r for r, i in enumerate(sort_ids(co, list(co._table), None))}
    rows = {i: model.browse(i) for i in ids}

    def key(i: int, fname: str) -> Any:
        v = rows[i]._get(fname)
        if fname in ranks:
            return ranks[fname].get(v) if v else None
        if model._fields[fname].type == "boolean":
            return int(bool(v))
        return None if v is False or v is None else v

    def cmp(a: int, b: int) -> int:
        for fname, desc, nulls_first in terms:
            ka, kb = key(a, fname), key(b, fname)
            if ka == kb:
                continue
            nf = desc if nulls_first is None else nulls_first
            if ka is None:
                return -1 if nf else 1
            if kb is None:
                return 1 if nf else -1
            res = -1 if ka < kb else 1
            return -res if desc else res
        return 0

    return sorted(sorted(ids), key=functools.cmp_to_key(cmp))
