"""``model.load(fields, rows)``: Odoo 17's import, as used for idempotent upserts.

Owns the column paths ('id', 'field', 'field/id', 'field/.id'), the string
converters of ir.fields.converter with their messages (selection by key or
label, case-insensitive; many2one by name, external id or database id), the
external-id upsert through ir.model.data, datetimes read in the context's or
the user's time zone (``_input_tz``) and stored in UTC, and the result format: ``ids`` false
and one message per problem (0-based ``record``, ``rows``) when any row fails,
in which case nothing of the batch is kept.  One2many sub-rows are not
supported (a NotImplementedError says so).
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import UserError, ValidationError
from .fields import DATE_FORMAT, Many2many, Many2one, One2many, datetime_to_string, to_date, to_datetime

if TYPE_CHECKING:
    from .orm import BaseModel


class _ImportError(ValueError):
    """A conversion problem: args = (message with %(field)s, extra info dict or None)."""


def _fix_path(name: str) -> list[str]:
    name = re.sub(r"([^/]):id", r"\1/id", name)
    name = re.sub(r":\.id", r"/.id", name)
    return name.split("/")


def _possible_values(comodel: str, subfield: str | None) -> dict[str, Any]:
    action: dict[str, Any] = {"name": "Possible Values", "type": "ir.actions.act_window", "target": "new",
                              "view_mode": "tree,form", "views": [[False, "list"], [False, "form"]],
                              "context": {"create": False}, "help": "See all possible values"}
    if subfield is None:
        action["res_model"] = comodel
    else:
        action["res_model"] = "ir.model.data"
        action["domain"] = [["model", "=", comodel]]
    return action


def xmlid_to_res_id(env: Any, xmlid: str, model: str | None = None) -> int | None:
    module, _, name = xmlid.partition(".")
    did = env.db.xid(module, name)
    if did is None:
        return None
    row = env.db.tables["ir.model.data"][did]
    if (model is None or row["model"] == model) and row["res_id"] in env.db.tables.get(row["model"], {}):
        return row["res_id"]
    return None


def _zone(name: Any) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if isinstance(name, str) and name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _input_tz(model: "BaseModel") -> ZoneInfo | None:
    """ir.fields.converter._input_tz: the context's ``tz``, else the user's, else UTC (None); unknown names
    are skipped."""
    user = model.env.db.tables.get("res.users", {}).get(model.env.uid) or {}
    return _zone(model.env.context.get("tz")) or _zone(user.get("tz"))


def _to_utc(naive: datetime, zone: ZoneInfo | None) -> datetime:
    """pytz ``localize(value, is_dst=False)`` then UTC: an ambiguous or skipped local time takes the standard
    (winter) offset, as Odoo's import does."""
    if zone is None:
        return naive
    candidates = [naive.replace(tzinfo=zone, fold=fold) for fold in (0, 1)]
    local = next((c for c in candidates if not c.dst()), candidates[0])
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def _convert(model: "BaseModel", path: list[str], value: Any) -> tuple[Any, list[dict]]:
    """Convert one cell; returns (value, warnings) or raises _ImportError."""
    field = model._fields[path[0]]
    sub = path[1] if len(path) > 1 else None
    t = field.type
    if t in ("char", "text", "html"):
        return value, []
    if t == "integer":
        try:
            return int(value), []
        except ValueError:
            raise _ImportError("'%s' does not seem to be an integer for field '%%(field)s'" % value, None)
    if t == "float":
        try:
            return float(value), []
        except ValueError:
            raise _ImportError("'%s' does not seem to be a number for field '%%(field)s'" % value, None)
    if t == "boolean":
        if value.lower() in ("1", "true", "yes"):
            return True, []
        if value.lower() in ("0", "false", "no"):
            return False, []
        return True, [{"message": "Unknown value '%s' for boolean field '%%(field)s'" % value,
                       "moreinfo": "Use '1' for yes and '0' for no"}]
    if t == "date":
        try:
            return to_date(value).strftime(DATE_FORMAT), []
        except ValueError:
            raise _ImportError("'%s' does not seem to be a valid date for field '%%(field)s'" % value,
                               {"moreinfo": "Use the format '2012-12-31'"})
    if t == "datetime":
        try:
            parsed = to_datetime(value)
        except ValueError:
            raise _ImportError("'%s' does not seem to be a valid datetime for field '%%(field)s'" % value,
                               {"moreinfo": "Use the format '2012-12-31 23:59:59'"})
        return datetime_to_string(_to_utc(parsed, _input_tz(model))), []
    if t == "selection":
        for key, label in field.selection:
            if value.lower() == str(key).lower() or value.lower() == label.lower():
                return key, []
        raise _ImportError("Value '%s' not found in selection field '%%(field)s'" % value,
                           {"moreinfo": [label or str(key) for key, label in field.selection if label or key]})
    if isinstance(field, Many2one):
        return _reference(model, field, sub, value), []
    if isinstance(field, Many2many):
        ids = [_reference(model, field, sub, v.strip()) for v in str(value).split(",") if v.strip()]
        return [(6, 0, ids)], []
    if isinstance(field, One2many):
        raise NotImplementedError("The Odoo sandbox does not import one2many sub-rows (field %s)" % field)
    return value, []


def _reference(model: "BaseModel", field: Any, sub: str | None, value: str) -> int:
    env = model.env
    co = env[field.comodel_name].sudo()
    if sub == ".id":
        try:
            rid = int(value)
        except ValueError:
            rid = 0
        if rid in co._table:
            return rid
        raise _ImportError("No matching record found for database id '%s' in field '%%(field)s'" % value,
                           {"moreinfo": _possible_values(field.comodel_name, sub)})
    if sub == "id":
        xid = value if "." in value else "%s.%s" % (env.context.get("module", "__import__"), value)
        rid = xmlid_to_res_id(env, xid, field.comodel_name)
        if rid:
            return rid
        raise _ImportError("No matching record found for external id '%s' in field '%%(field)s'" % value,
                           {"moreinfo": _possible_values(field.comodel_name, sub)})
    found = co.name_search(name=value, operator="=", limit=2)
    if found:
        return found[0][0]
    raise _ImportError("No matching record found for name '%s' in field '%%(field)s'" % value,
                       {"moreinfo": _possible_values(field.comodel_name, None)})


def _load_one(model: "BaseModel", xid: str | None, dbid: int | None, vals: dict[str, Any]) -> int:
    env = model.env
    data = env["ir.model.data"].sudo()
    if xid:
        module, _, name = xid.partition(".")
        did = env.db.xid(module, name)
        if did is not None:
            row = data._table[did]
            if row["model"] != model._name:
                raise ValidationError(
                    f"For external id {xid} when trying to create/update a record of model {model._name} "
                    f"found record of different model {row['model']} ({did})")
            if row["res_id"] in model._table:
                model.browse(row["res_id"]).write(vals)
                return row["res_id"]
            del data._table[did]  # the record behind the external id was deleted: recreate both
        rec = model.create(vals)
        data.create({"module": module, "name": name, "model": model._name, "res_id": rec.id})
        return rec.id
    if dbid:
        model.browse(dbid).write(vals)
        return dbid
    return model.create(vals).id


def load_records(model: "BaseModel", fields: list[str], data: list[list[Any]]) -> dict[str, Any]:
    env = model.env
    db = env.db
    paths = [_fix_path(f) for f in fields]
    for path in paths:
        if path[0] not in ("id", ".id"):
            model._fields[path[0]]  # an unknown column is a KeyError, as in Odoo
    labels = {name: f.string for name, f in model._fields.items()}
    savepoint = db.snapshot()
    messages: list[dict[str, Any]] = []
    ids: list[int] = []
    errors = 0
    for index, row in enumerate(data):
        base = {"rows": {"from": index, "to": index}}
        xid, dbid, vals = None, None, {}
        for i, path in enumerate(paths):
            value = row[i]
            if path[0] == "id":
                if value:
                    xid = value if "." in value else "%s.%s" % (env.context.get("module", "__import__"), value)
                continue
            if path[0] == ".id":
                dbid = int(value) if value else None
                continue
            fname = path[0]
            if not value:
                vals[fname] = False
                continue
            try:
                vals[fname], warnings = _convert(model, path, value)
            except _ImportError as exc:
                msg = dict(base, type="error", record=index, field=fname,
                           message=exc.args[0] % {"field": labels[fname]})
                if exc.args[1]:
                    msg.update(exc.args[1])
                msg["field_name"] = labels[fname]
                messages.append(msg)
                continue
            for w in warnings:
                msg = dict(base, type="warning", record=index, field=fname,
                           message=w["message"] % {"field": labels[fname]})
                msg.update(moreinfo=w["moreinfo"], field_name=labels[fname])
                messages.append(msg)
        info = dict(base, record=index)
        sp = db.snapshot()
        try:
            ids.append(_load_one(model, xid, dbid, vals))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message, as in Odoo's load()
            db.restore(sp)
            errors += 1
            if getattr(exc, "column", None):
                fname = exc.column
                messages.append(dict(info, type="error", message="Missing required value for the field '%s' (%s)"
                                     % (labels[fname], fname), field=fname))
            elif getattr(exc, "pg_message", None):
                messages.append(dict(info, type="error", message=exc.pg_message))
            elif isinstance(exc, UserError):
                messages.append(dict(info, type="error", message=str(exc)))
            else:
                messages.append(dict(info, type="error", message="Unknown error during import: %s: %s"
                                     % (type(exc), exc), moreinfo="Resolve other errors first"))
        if errors >= 10 and errors >= (index + 1) / 10:
            messages.append({"type": "warning", "message": "Found more than 10 errors and more than one "
                             "error per 10 records, interrupted to avoid showing too many errors."})
            break
    if any(m["type"] == "error" for m in messages):
        db.restore(savepoint)
        return {"ids": False, "messages": messages, "nextrow": 0}
    return {"ids": ids, "messages": messages, "nextrow": 0}
