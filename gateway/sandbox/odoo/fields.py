"""Field types of the sandbox ORM and Odoo 17's value rules for each of them.

Owns how a value sent by a client is checked and converted for storage
(``convert_to_cache``: the "Wrong value for model.field" and datetime format
errors come from here, with Odoo's own wording), how a stored value is shown
on read (``convert_to_read``: false for empty, [id, name] for many2one, id
lists for x2many) and what ``fields_get`` says about a field.  It does not
store records, evaluate domains or run computes (see ``orm.py``).
"""
from __future__ import annotations

from datetime import date, datetime, time
from typing import Any, Callable

DATE_FORMAT = "%Y-%m-%d"
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def to_date(value: Any) -> date | None:
    """odoo.fields.Date.to_date: dates, datetimes or 'YYYY-MM-DD...' strings."""
    if not value:
        return None
    if isinstance(value, date):
        return value.date() if isinstance(value, datetime) else value
    value = value[:10]
    return datetime.strptime(value, DATE_FORMAT).date()


def to_datetime(value: Any) -> datetime | None:
    """odoo.fields.Datetime.to_datetime: only 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD' strings.

    The format is cut to the value's length exactly as Odoo does, so an ISO
    'T'/'Z' string and an XML-RPC DateTime object fail with Odoo's own errors.
    """
    if not value:
        return None
    if isinstance(value, date):
        if isinstance(value, datetime):
            if value.tzinfo:
                raise ValueError("Datetime field expects a naive datetime: %s" % value)
            return value
        return datetime.combine(value, time.min)
    return datetime.strptime(value, DATETIME_FORMAT[:len(value) - 2])


def datetime_to_string(value: datetime) -> str:
    return value.strftime(DATETIME_FORMAT)


class Field:
    """A declared field. ``compute``/``inverse`` name methods of the model taking one record."""

    type = "unknown"
    relational = False

    def __init__(self, string: str | None = None, *, required: bool = False, readonly: bool = False,
                 default: Any = None, compute: str | None = None, inverse: str | None = None,
                 related: str | None = None, store: bool | None = None, help: str | None = None) -> None:
        self.string = string
        self.required = required
        self.default = default
        self.compute = compute
        self.inverse = inverse
        self.related = related
        self.readonly = readonly or bool((compute and not inverse) or related)
        self.store = store if store is not None else not (compute or related)
        self.help = help
        self.name = ""
        self.model_name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        if self.string is None:
            self.string = name.replace("_id", "").replace("_", " ").title() if name != "id" else "ID"

    def __str__(self) -> str:
        return f"{self.model_name}.{self.name}"

    @property
    def computed(self) -> bool:
        return bool(self.compute or self.related)

    def empty(self) -> Any:
        return False

    def default_value(self, env: Any) -> Any:
        d = self.default
        return d(env) if callable(d) else d

    def convert_to_cache(self, value: Any, env: Any) -> Any:
        return value

    def convert_to_read(self, value: Any, env: Any, load: str | None = "_classic_read") -> Any:
        return False if value is None else value

    def describe(self) -> dict[str, Any]:
        d = {"name": self.name, "type": self.type, "string": self.string, "required": self.required,
             "readonly": self.readonly, "store": self.store, "searchable": True,
             "sortable": self.store, "manual": False, "company_dependent": False,
             "change_default": False, "depends": [self.related] if self.related else []}
        if self.help:
            d["help"] = self.help
        return d


class Char(Field):
    type = "char"

    def convert_to_cache(self, value: Any, env: Any) -> Any:
        if value is None or value is False:
            return False
        return str(value)


class Text(Char):
    type = "text"


class Html(Char):
    type = "html"


class Integer(Field):
    type = "integer"

    def empty(self) -> Any:
        return 0

    def convert_to_cache(self, value: Any, env: Any) -> Any:
        return int(value or 0)


class Float(Field):
    type = "float"

    def empty(self) -> Any:
        return 0.0

    def convert_to_cache(self, value: Any, env: Any) -> Any:
        return float(value or 0.0)


class Boolean(Field):
    type = "boolean"

    def convert_to_cache(self, value: Any, env: Any) -> Any:
        return bool(value)


class Date(Field):
    type = "date"

    def convert_to_cache(self, value: Any, env: Any) -> Any:
        d = to_date(value)
        return d.strftime(DATE_FORMAT) if d else False


class Datetime(Field):
    type = "datetime"

    def convert_to_cache(self, value: Any, env: Any) -> Any:
        d = to_datetime(value)
        return datetime_to_string(d) if d else False


class Selection(Field):
    type = "selection"

    def __init__(self, selection: list[tuple[str, str]], string: str | None = None, **kw: Any) -> None:
        super().__init__(string, **kw)
        self.selection = selection

    def convert_to_cache(self, value: Any, env: Any) -> Any:
        if value in [key for key, _label in self.selection]:
            return value
        if not value:
            return False
        raise ValueError("Wrong value for %s: %r" % (self, value))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "selection": [list(s) for s in self.selection]}


class Many2one(Field):
    type = "many2one"
    relational = True

    def __init__(self, comodel_name: str, string: str | None = None, *, ondelete: str | None = None,
                 **kw: Any) -> None:
        super().__init__(string, **kw)
        self.comodel_name = comodel_name
        self.ondelete = ondelete or ("restrict" if self.required else "set null")

    def convert_to_cache(self, value: Any, env: Any) -> Any:
        # odoo Many2one.convert_to_cache: bool is an int, so True means id 1, as in Odoo.
        if value is None or value is False:
            return False
        if isinstance(value, int):
            return value or False
        if isinstance(value, (list, tuple)) and value:
            return self.convert_to_cache(value[0], env)
        raise ValueError("Wrong value for %s: %r" % (self, value))

    def convert_to_read(self, value: Any, env: Any, load: str | None = "_classic_read") -> Any:
        if not value:
            return False
        if load == "_classic_read":
            rec = env[self.comodel_name].browse(value)
            return [value, rec._display_name()]
        return value

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "relation": self.comodel_name, "domain": [], "context": {}}


class _X2many(Field):
    relational = True

    def empty(self) -> Any:
        return []

    def convert_to_read(self, value: Any, env: Any, load: str | None = "_classic_read") -> Any:
        return list(value or [])


class One2many(_X2many):
    type = "one2many"

    def __init__(self, comodel_name: str, inverse_name: str, string: str | None = None,
                 domain: list[tuple[str, str, Any]] | None = None, **kw: Any) -> None:
        super().__init__(string, store=False, **kw)
        self.comodel_name = comodel_name
        self.inverse_name = inverse_name
        self.domain = list(domain or [])  # ('field', '=', value) terms only

    def matches(self, row: dict[str, Any]) -> bool:
        """Whether a comodel row passes the field's domain (stored values, '=' only)."""
        return all(bool(row.get(name)) == bool(value) if isinstance(value, bool) else row.get(name) == value
                   for name, _op, value in self.domain)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "relation": self.comodel_name, "relation_field": self.inverse_name,
                "store": True, "sortable": False, "domain": [list(t) for t in self.domain], "context": {}}


class Many2many(_X2many):
    type = "many2many"

    def __init__(self, comodel_name: str, string: str | None = None, **kw: Any) -> None:
        super().__init__(string, **kw)
        self.comodel_name = comodel_name

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "relation": self.comodel_name, "sortable": False,
                "domain": [], "context": {}}


def today_string(env: Any) -> str:
    return env.now().strftime(DATE_FORMAT)


def now_string(env: Any) -> str:
    return datetime_to_string(env.now())


DefaultFn = Callable[[Any], Any]
