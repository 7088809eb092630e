"""The sandbox's small ORM: the database, the environment and generic model methods.

Owns the in-memory tables (one dict of rows per model, rows replaced rather than
mutated so a transaction snapshot is a shallow copy), the environment (user,
context, clock), model-level access rights with Odoo's AccessError text, and
the public methods every Odoo model answers over RPC: search, search_count,
search_read, read, create, write, unlink, fields_get, default_get,
name_search, load (in ``load.py``), with Odoo 17's rules and error texts.
Concrete models, demo data and their business methods live in ``models.py``.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from . import domain as dom
from .errors import AccessError, MissingError, ValidationError
from .fields import Char, Datetime, Field, Integer, Many2many, Many2one, One2many, now_string


def api_model(fn: Callable) -> Callable:
    """Mark a method as model-level (no ids as first argument), like @api.model."""
    fn._api = "model"
    return fn


def since(major: int, private_from: int | None = None) -> Callable[[Callable], Callable]:
    """A method Odoo has from series ``major`` on (older ones: no such attribute), private (not callable over
    RPC, ``@api.private``) from ``private_from``."""
    def mark(fn: Callable) -> Callable:
        fn._since, fn._private_from = major, private_from
        return fn
    return mark


def _default_get_19(self: "BaseModel", fields: list[str]) -> dict[str, Any]:
    return type(self).default_get(self, fields)


def _name_search_19(self: "BaseModel", name: str = "", domain: Any = None, operator: str = "ilike",
                    limit: int = 100) -> list[list[Any]]:
    return type(self).name_search(self, name, domain, operator, limit)


_default_get_19._api = _name_search_19._api = "model"  # type: ignore[attr-defined]
# Odoo 19 renamed these parameters (default_get(fields), name_search(..., domain, ...)): by name, only the
# series' own spelling binds (JSON-2 passes every argument by name)
_SERIES_19 = {"default_get": _default_get_19, "name_search": _name_search_19}


def rpc_method(model: "BaseModel", name: str) -> Callable:
    """The unbound method ``name`` as the model's Odoo series exposes it over RPC: AttributeError when the series
    has no such method, AccessError when it is private there (odoo.service.model.get_public_method)."""
    method = getattr(type(model), name, None)
    if method is None or getattr(method, "_since", 0) > model.env.major:
        raise AttributeError(f"type object '{model._name}' has no attribute '{name}'")
    private_from = getattr(method, "_private_from", None)
    if private_from is not None and model.env.major >= private_from:
        raise AccessError(f"Private methods (such as '{model._name}.{name}') cannot be called remotely.")
    if model.env.major >= 19 and name in _SERIES_19:
        return _SERIES_19[name]
    return method


def api_model_create(fn: Callable) -> Callable:
    fn._api = "model_create"
    return fn


class NotNullViolation(ValidationError):
    """Odoo's ValidationError for a NOT NULL violation; remembers the column for load()."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


class ForeignKeyViolation(ValidationError):
    """Odoo's ValidationError for a foreign key violation; keeps PostgreSQL's text for load()."""

    def __init__(self, pg_message: str, message: str) -> None:
        super().__init__(message)
        self.pg_message = pg_message


for _cls in (NotNullViolation, ForeignKeyViolation):
    _cls.__module__ = "odoo.exceptions"
    _cls.__name__ = _cls.__qualname__ = "ValidationError"


class Database:
    """All tables of one database, with snapshots for rollback and a change counter."""

    def __init__(self, name: str, clock: Callable[[], datetime] | None = None) -> None:
        self.name = name
        self.tables: dict[str, dict[int, dict[str, Any]]] = {}
        self.next_ids: dict[str, int] = {}
        self.sequences: dict[str, int] = {}
        self.version = 0
        self.clock = clock or (lambda: datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0))
        self._xid: dict[tuple[str, str], int] = {}
        self._xid_table: dict[int, dict[str, Any]] | None = None

    def xid_index(self) -> dict[tuple[str, str], int]:
        """(module, name) -> ir.model.data id: what PostgreSQL's unique index on ir_model_data gives Odoo.

        Kept up to date by ir.model.data's create and write (`IrModelData._after_write`), rebuilt
        when the table object is replaced (a rollback, a load from disk). An entry may be stale
        after a delete or a rename, so `xid` checks the row it points to.
        """
        table = self.tables.setdefault("ir.model.data", {})
        if self._xid_table is not table:
            self._xid = {(r.get("module"), r.get("name")): i for i, r in sorted(table.items())}
            self._xid_table = table
        return self._xid

    def xid(self, module: str, name: str) -> int | None:
        """The ir.model.data id of module.name, or None."""
        rid = self.xid_index().get((module, name))
        row = self.tables["ir.model.data"].get(rid) if rid is not None else None
        return rid if row is not None and row.get("module") == module and row.get("name") == name else None

    def snapshot(self) -> tuple:
        return ({m: dict(t) for m, t in self.tables.items()}, dict(self.next_ids),
                dict(self.sequences), self.version)

    def restore(self, snap: tuple) -> None:
        tables, next_ids, sequences, version = snap
        self.tables = {m: dict(t) for m, t in tables.items()}
        self.next_ids, self.sequences, self.version = dict(next_ids), dict(sequences), version

    def next_sequence(self, code: str) -> int:
        self.sequences[code] = self.sequences.get(code, 0) + 1
        self.version += 1
        return self.sequences[code]

    def to_dict(self) -> dict[str, Any]:
        return {"tables": {m: [[i, r] for i, r in sorted(t.items())] for m, t in self.tables.items()},
                "next_ids": self.next_ids, "sequences": self.sequences}

    def load_dict(self, data: Mapping[str, Any]) -> None:
        self.tables = {m: {int(i): r for i, r in rows} for m, rows in data["tables"].items()}
        self.next_ids = dict(data["next_ids"])
        self.sequences = dict(data["sequences"])


class Environment:
    """Who is calling, with which context, on which database."""

    def __init__(self, registry: Mapping[str, type["BaseModel"]], db: Database, uid: int,
                 context: Mapping[str, Any] | None = None, su: bool = False) -> None:
        self.registry = registry
        self.db = db
        self.uid = uid
        self.context = dict(context or {})
        self.su = su

    def __getitem__(self, model_name: str) -> "BaseModel":
        return self.registry[model_name](self, ())

    def get(self, model_name: str) -> "BaseModel | None":
        cls = self.registry.get(model_name)
        return cls(self, ()) if cls else None

    def now(self) -> datetime:
        return self.db.clock()

    @property
    def major(self) -> int:
        """The Odoo series played (``models.Registry.major``; 17 for a plain mapping), for rules that differ."""
        return getattr(self.registry, "major", 17)

    def sudo(self) -> "Environment":
        return Environment(self.registry, self.db, self.uid, self.context, su=True)

    def user_group_names(self) -> set[str]:
        row = self.db.tables.get("res.users", {}).get(self.uid)
        if not row:
            return set()
        groups = self.db.tables.get("res.groups", {})
        return {groups[g]["full_name"] for g in row.get("groups_id", []) if g in groups}


_ID_FIELD = Integer("ID", readonly=True)
_ID_FIELD.name = "id"


class BaseModel:
    """A recordset: a model class bound to an environment and a tuple of ids."""

    _name = "base"
    _description = "Base"
    _rec_name = "name"
    _order = "id"
    _access: Mapping[str, list[str]] = {}
    _fields: dict[str, Field] = {}

    display_name = Char("Display Name", compute="_compute_display_name")
    create_date = Datetime("Created on", readonly=True)
    create_uid = Many2one("res.users", "Created by", readonly=True)
    write_date = Datetime("Last Updated on", readonly=True)
    write_uid = Many2one("res.users", "Last Updated by", readonly=True)

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.__name__ = cls.__qualname__ = cls._name  # "type object 'mrp.production' has no attribute ..."
        fields: dict[str, Field] = {"id": _ID_FIELD}
        for klass in reversed(cls.__mro__):
            for name, attr in vars(klass).items():
                if isinstance(attr, Field):
                    fields[name] = attr
        cls._fields = {}
        for name, field in fields.items():
            field = copy.copy(field)
            field.model_name = cls._name
            cls._fields[name] = field

    def __init__(self, env: Environment, ids: tuple[int, ...]) -> None:
        self.env = env
        self._ids = tuple(ids)

    # -- recordset basics -------------------------------------------------
    def __iter__(self) -> Iterator["BaseModel"]:
        return (type(self)(self.env, (i,)) for i in self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __bool__(self) -> bool:
        return bool(self._ids)

    def __repr__(self) -> str:
        return f"{self._name}{self._ids!r}"

    @property
    def ids(self) -> list[int]:
        return list(self._ids)

    @property
    def _table(self) -> dict[int, dict[str, Any]]:
        return self.env.db.tables.setdefault(self._name, {})

    def browse(self, ids: Any = ()) -> "BaseModel":
        if isinstance(ids, int) and not isinstance(ids, bool):
            ids = (ids,)
        elif not ids:
            ids = ()
        return type(self)(self.env, tuple(ids))

    def with_context(self, context: Mapping[str, Any] | None = None, **kw: Any) -> "BaseModel":
        env = Environment(self.env.registry, self.env.db, self.env.uid,
                          {**self.env.context, **(context or {}), **kw}, self.env.su)
        return type(self)(env, self._ids)

    def sudo(self) -> "BaseModel":
        return type(self)(self.env.sudo(), self._ids)

    def exists(self) -> "BaseModel":
        return self.browse([i for i in self._ids if i in self._table])

    def ensure_one(self) -> "BaseModel":
        if len(self._ids) != 1:
            raise ValueError("Expected singleton: %s" % self)
        return self

    @property
    def id(self) -> int | bool:  # type: ignore[override]
        return self._ids[0] if self._ids else False

    # -- values -------------------------------------------------------------
    def _missing_error(self) -> MissingError:
        return MissingError("Record does not exist or has been deleted.\n(Record: %s, User: %s)"
                            % (self, self.env.uid))

    def _get(self, fname: str) -> Any:
        """The cache-form value of a field on a singleton (computed, related and one2many included)."""
        self.ensure_one()
        field = self._fields[fname]
        row = self._table.get(self._ids[0])
        if row is None:
            raise self._missing_error()
        if fname == "id":
            return self._ids[0]
        if field.related:
            return self._get_path(field.related)
        if field.compute:
            return getattr(self, field.compute)()
        if isinstance(field, One2many):
            co = self.env[field.comodel_name]
            ids = [i for i, r in co._table.items() if r.get(field.inverse_name) == self._ids[0] and field.matches(r)]
            return dom.sort_ids(co, ids, None)
        return row.get(fname, field.empty())

    def _get_path(self, path: str) -> Any:
        head, _, rest = path.partition(".")
        if not rest:
            return self._get(head)
        target = self._get(head)
        if not target:
            return self._fields[head].empty()
        return self.env[self._fields[head].comodel_name].browse(target)._get_path(rest)

    def _compute_display_name(self) -> str:
        return self._display_name()

    def _display_name(self) -> str:
        if not self._ids or self._ids[0] not in self._table:
            return ""
        name = self._get(self._rec_name) if self._rec_name in self._fields else False
        return name if name else f"{self._name},{self._ids[0]}"

    # -- access rights ------------------------------------------------------
    @api_model
    def check_access_rights(self, operation: str, raise_exception: bool = True) -> bool:
        if self.env.su:
            return True
        mode = operation
        allowed = self._access.get(mode, [])
        if self.env.user_group_names() & set(allowed):
            return True
        if not raise_exception:
            return False
        head = {"read": "You are not allowed to access '%s' (%s) records.",
                "write": "You are not allowed to modify '%s' (%s) records.",
                "create": "You are not allowed to create '%s' (%s) records.",
                "unlink": "You are not allowed to delete '%s' (%s) records."}[mode] % (
            self._description, self._name)
        groups = "\n".join("\t- %s" % g for g in sorted(allowed, key=lambda g: g.split("/")))
        info = ("This operation is allowed for the following groups:\n%s" % groups) if groups \
            else "No group currently allows this operation."
        raise AccessError(f"{head}\n\n{info}\n\nContact your administrator to request access if necessary.")

    @since(18, private_from=19)
    def check_access(self, operation: str) -> None:
        """Odoo 18+: AccessError unless the user may do ``operation`` (model level; the sandbox has no record
        rules); private (``@api.private``) from 19."""
        self.check_access_rights(operation)

    @since(18)
    def has_access(self, operation: str) -> bool:
        """Odoo 18+: whether the user may do ``operation``; replaces the deprecated check_access_rights."""
        return self.check_access_rights(operation, raise_exception=False)

    # -- search -------------------------------------------------------------
    def _search(self, domain: Any, offset: int = 0, limit: int | None = None,
                order: str | None = None) -> list[int]:
        self.check_access_rights("read")
        norm = dom.check(self, domain)
        if "active" in self._fields and self.env.context.get("active_test", True) and not any(
                isinstance(t, tuple) and isinstance(t[0], str) and t[0].split(".")[0] == "active"
                for t in norm):
            norm = ["&", ("active", "=", True)] + norm
        ids = [i for i in self._table if dom.matches(self.browse(i), norm)]
        ids = dom.sort_ids(self, ids, order)
        ids = ids[offset or 0:]
        return ids[:limit] if limit else ids

    @api_model
    def search(self, domain: Any, offset: int = 0, limit: int | None = None,
               order: str | None = None) -> "BaseModel":
        return self.browse(self._search(domain, offset, limit, order))

    @api_model
    def search_count(self, domain: Any, limit: int | None = None) -> int:
        return len(self._search(domain, limit=limit, order="id"))

    @api_model
    def search_read(self, domain: Any = None, fields: list[str] | None = None, offset: int = 0,
                    limit: int | None = None, order: str | None = None, **read_kwargs: Any) -> list[dict]:
        records = self.search(domain or [], offset=offset, limit=limit, order=order)
        if not records:
            return []
        return records.read(fields, **read_kwargs)

    @api_model
    def name_search(self, name: str = "", args: Any = None, operator: str = "ilike",
                    limit: int = 100) -> list[list[Any]]:
        domain = list(args or [])
        if name:
            domain = ["&", (self._rec_name, operator, name)] + dom.normalize(domain) if domain \
                else [(self._rec_name, operator, name)]
        return [[r.id, r._display_name()] for r in self.search(domain, limit=limit)]

    # -- read ---------------------------------------------------------------
    def _check_field_names(self, names: Any) -> None:
        for name in names:
            if name not in self._fields:
                raise ValueError("Invalid field %r on model %r" % (name, self._name))

    def read(self, fields: list[str] | None = None, load: str | None = "_classic_read") -> list[dict]:
        self.check_access_rights("read")
        if fields:
            self._check_field_names(fields)
        names = [f for f in (fields or list(self._fields)) if f != "id"]
        result = []
        for rec in self.exists():
            vals: dict[str, Any] = {"id": rec.id}
            for name in names:
                field = self._fields[name]
                vals[name] = field.convert_to_read(rec._get(name), self.env, load)
            result.append(vals)
        return result

    @api_model
    def fields_get(self, allfields: list[str] | None = None,
                   attributes: list[str] | None = None) -> dict[str, dict]:
        self.check_access_rights("read")
        out = {}
        for name, field in self._fields.items():
            if allfields and name not in allfields:
                continue
            desc = field.describe()
            out[name] = {k: v for k, v in desc.items() if not attributes or k in attributes}
        return out

    @api_model
    def default_get(self, fields_list: list[str]) -> dict[str, Any]:
        out = {}
        for name in fields_list:
            field = self._fields.get(name)
            if field is not None and field.default is not None:
                out[name] = field.default_value(self.env)
        return out

    # -- write path -----------------------------------------------------------
    def _convert_vals(self, vals: Mapping[str, Any]) -> tuple[dict, dict, dict]:
        """Split client values into stored columns, x2many commands and inverse writes."""
        stored, x2many, inverse = {}, {}, {}
        for key, val in vals.items():
            field = self._fields.get(key)
            if field is None:
                raise ValueError("Invalid field %r on model %r" % (key, self._name))
        for key, val in vals.items():
            field = self._fields[key]
            if key in ("id", "display_name", "create_date", "create_uid", "write_date", "write_uid"):
                continue
            if isinstance(field, (One2many, Many2many)):
                x2many[key] = val
            elif field.related or field.inverse:
                inverse[key] = field.convert_to_cache(val, self.env)
            elif field.compute:
                continue  # a computed field without inverse: the value is recomputed, as in Odoo
            else:
                stored[key] = field.convert_to_cache(val, self.env)
        return stored, x2many, inverse

    def _check_not_null(self, row: Mapping[str, Any]) -> None:
        for name, field in self._fields.items():
            if field.required and field.store and field.type not in ("boolean", "integer", "float") \
                    and row.get(name) in (False, None):
                raise NotNullViolation(name,
                    "The operation cannot be completed:\n"
                    "- Create/update: a mandatory field is not set.\n"
                    "- Delete: another model requires the record being deleted. If possible, archive it instead.\n\n"
                    "Model: %s (%s)\nField: %s (%s)\n" % (self._description, self._name, field.string, name))

    def _fk_error(self, fname: str, value: Any = None) -> "ForeignKeyViolation":
        table = self._name.replace(".", "_")
        co_table = getattr(self._fields[fname], "comodel_name", "").replace(".", "_")
        return ForeignKeyViolation(
            'insert or update on table "%s" violates foreign key constraint "%s_%s_fkey"\n'
            'DETAIL:  Key (%s)=(%s) is not present in table "%s".\n' % (table, table, fname, fname, value, co_table),
            "The operation cannot be completed: another model requires the record being deleted. "
            "If possible, archive it instead.\n\nModel: %s (%s)\nConstraint: %s_%s_fkey\n"
            % (self._description, self._name, table, fname))

    def _check_foreign_keys(self, row: Mapping[str, Any]) -> None:
        for name, value in row.items():
            field = self._fields.get(name)
            if isinstance(field, Many2one) and value and value not in self.env[field.comodel_name]._table:
                raise self._fk_error(name, value)
            if isinstance(field, Many2many):
                co = self.env[field.comodel_name]._table
                if any(i not in co for i in value):
                    raise self._fk_error(name)

    def _put(self, rid: int, changes: Mapping[str, Any]) -> None:
        self._table[rid] = {**self._table[rid], **changes}
        self.env.db.version += 1

    @api_model_create
    def create(self, vals_list: Any) -> "BaseModel":
        self.check_access_rights("create")
        if isinstance(vals_list, Mapping):
            vals_list = [vals_list]
        db = self.env.db
        prepared = []
        for vals in vals_list:
            stored, x2many, inverse = self._convert_vals(vals)
            for name, field in self._fields.items():
                if name in vals or field.default is None:
                    continue
                if isinstance(field, (One2many, Many2many)):
                    x2many[name] = field.default_value(self.env)
                elif field.store:
                    stored[name] = field.convert_to_cache(field.default_value(self.env), self.env)
            stored = self._prepare_create(stored)
            self._check_not_null(stored)
            self._check_foreign_keys(stored)
            prepared.append((stored, x2many, inverse))
        ids = []
        for stored, x2many, inverse in prepared:
            rid = db.next_ids.get(self._name, 1)
            db.next_ids[self._name] = rid + 1
            now = now_string(self.env)
            self._table[rid] = {**stored, "create_date": now, "write_date": now,
                                "create_uid": self.env.uid, "write_uid": self.env.uid}
            db.version += 1
            rec = self.browse(rid)
            rec._write_x2many_and_inverse(x2many, inverse)
            ids.append(rid)
        records = self.browse(ids)
        records._after_write()
        return records

    def _prepare_create(self, stored: dict[str, Any]) -> dict[str, Any]:
        """Hook for models that fill values at creation (sequence names)."""
        return stored

    def _after_write(self) -> None:
        """Hook for model constraints run after create/write."""

    def write(self, vals: Mapping[str, Any]) -> bool:
        self._check_field_names(vals)
        self.check_access_rights("write")
        for rec in self:
            if rec.id not in self._table:
                raise rec._missing_error()
        stored, x2many, inverse = self._convert_vals(vals)
        for rec in self:
            row = {**self._table[rec.id], **stored}
            self._check_not_null(row)
        self._check_foreign_keys(stored)
        for rec in self:
            rec._put(rec.id, {**stored, "write_date": now_string(self.env), "write_uid": self.env.uid})
            rec._write_x2many_and_inverse(x2many, inverse)
        self._after_write()
        return True

    def _write_x2many_and_inverse(self, x2many: Mapping[str, Any], inverse: Mapping[str, Any]) -> None:
        for name, commands in x2many.items():
            self._apply_commands(self._fields[name], commands)
        for name, value in inverse.items():
            field = self._fields[name]
            if field.related:
                head, _, rest = field.related.partition(".")
                target = self._get(head)
                if target:
                    self.env[self._fields[head].comodel_name].browse(target).write({rest: value})
            else:
                getattr(self, field.inverse)(value)

    def _apply_commands(self, field: Field, commands: Any) -> None:
        """Odoo's x2many commands: 0 create, 1 update, 2 delete, 3 unlink, 4 link, 5 clear, 6 set."""
        if commands is False or commands is None:
            commands = [(5,)]
        if not isinstance(commands, (list, tuple)):
            raise ValueError("Wrong value for %s: %r" % (field, commands))
        if commands and all(isinstance(c, int) for c in commands):
            commands = [(6, 0, list(commands))]
        co = self.env[field.comodel_name]
        current = list(self._get(field.name))
        for cmd in commands:
            if not isinstance(cmd, (list, tuple)) or not cmd or cmd[0] not in range(7):
                raise ValueError("Wrong value for %s: %r" % (field, cmd))
            code = cmd[0]
            if code == 0:
                extra = {field.inverse_name: self.id} if isinstance(field, One2many) else {}
                current.append(co.create({**cmd[2], **extra}).id)
            elif code == 1:
                co.browse(cmd[1]).write(cmd[2])
            elif code == 2:
                co.browse(cmd[1]).unlink()
                current = [i for i in current if i != cmd[1]]
            elif code == 3:
                current = [i for i in current if i != cmd[1]]
            elif code == 4:
                if cmd[1] not in current:
                    current.append(cmd[1])
            elif code == 5:
                current = []
            elif code == 6:
                current = list(cmd[2])
        if isinstance(field, One2many):
            before = set(self._get(field.name))
            for i in before - set(current):
                co.browse(i).write({field.inverse_name: False})
            for i in current:
                if i not in before:
                    co.browse(i).write({field.inverse_name: self.id})
        else:
            self._check_foreign_keys({field.name: current})
            self._put(self.id, {field.name: current})

    def unlink(self) -> bool:
        self.check_access_rights("unlink")
        for rec in self:
            if rec.id not in self._table:
                raise rec._missing_error()
        doomed = set(self._ids)
        for model_name, cls in self.env.registry.items():
            other = self.env[model_name].sudo()
            for fname, field in other._fields.items():
                if not field.store or getattr(field, "comodel_name", None) != self._name:
                    continue
                for rid, row in list(other._table.items()):
                    if (model_name, rid) == (self._name, rid) and rid in doomed:
                        continue
                    if isinstance(field, Many2one) and row.get(fname) in doomed:
                        if field.ondelete == "cascade":
                            if rid in other._table:
                                other.browse(rid).unlink()
                        elif field.ondelete == "restrict":
                            raise other._fk_error(fname)
                        else:
                            other._put(rid, {fname: False})
                    elif isinstance(field, Many2many) and doomed.intersection(row.get(fname, [])):
                        other._put(rid, {fname: [i for i in row[fname] if i not in doomed]})
        data = self.env["ir.model.data"].sudo()
        for rid, row in list(data._table.items()):
            if row.get("model") == self._name and row.get("res_id") in doomed:
                del data._table[rid]
        for rid in self._ids:
            self._table.pop(rid, None)
        self.env.db.version += 1
        return True

    @api_model
    def load(self, fields: list[str], data: list[list[Any]]) -> dict[str, Any]:
        from .load import load_records
        return load_records(self, fields, data)
