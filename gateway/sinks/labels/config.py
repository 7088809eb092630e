"""The `[sinks.<name>]` section of `type = "labels"`: one label printer, its templates and its label actions.

It owns the typed model and its validation, every problem with its key path:
the printer URL (`zpl://host[:9100]` raw TCP to a Zebra-compatible printer,
`ipp://host[:631]/printers/<queue>` or `ipps://...` a CUPS/IPP printer that
takes PDF), the templates (size, fields with their position and their data,
`{placeholders}` checked against the fields an event can give) and the actions
(`on` an event kind, every N good parts, a finished work order, a lot scanned
or created). It imports no printing library: `gateway.sinks.config` calls
`parse_label_sink` for every labels section.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

from drivers.base import ConfigCollector

#: what a field of a template draws
FIELD_TYPES = ("text", "code128", "gs1_128", "datamatrix", "qr")
#: the events a label action reacts to
ACTION_KINDS = ("production", "workorder_finish", "scan")
#: the placeholders an event can fill (`gateway.sinks.labels.template.values`)
PLACEHOLDERS = frozenset({"product", "lot", "serial", "quantity", "work_order", "date", "time", "datetime",
                          "machine", "work_center", "operator", "shift", "code", "event_id", "seq", "label_no",
                          "gateway"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_URL = re.compile(r"^(zpl|ipp|ipps)://(\[[0-9A-Fa-f:.]+\]|[^:/\s\[\]]+)(?::(\d{1,5}))?(/[^\s]*)?$")


@dataclass(frozen=True)
class FieldSpec:
    """One thing drawn on a label: text or a barcode of `data` (with placeholders) at (x, y) mm."""

    type: str
    data: str
    x_mm: float
    y_mm: float
    #: text: the character height; 1D barcodes: the bar height; 2D: the module (dot) size
    size_mm: float = 3.0


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    width_mm: float
    height_mm: float
    fields: tuple[FieldSpec, ...]


@dataclass(frozen=True)
class ActionSpec:
    """When to print: `on` a kind of event, optionally only for some machines."""

    on: str
    template: str
    #: production: one label per `every` good parts of a machine (0: one label per production event)
    every: int = 0
    #: scan: only scans that set this context key (e.g. "lot"); None: every scan
    key: str | None = None
    machines: frozenset[str] = frozenset()
    copies: int = 1


@dataclass(frozen=True)
class LabelSinkConfig:
    """A label printer fed from its own cursor: the labels its actions make, each printed once, in order."""

    name: str
    protocol: str              # zpl | ipp | ipps
    host: str
    port: int
    path: str                  # ipp: the printer's resource, e.g. /printers/labels
    templates: dict[str, TemplateSpec]
    actions: tuple[ActionSpec, ...]
    dpi: int = 203             # zpl: the printer's resolution (dots per inch)
    timeout: float = 10.0      # connect, send and answer, seconds
    retry_cap: float = 60.0
    batch_size: int = 50
    history: int = 200         # printed labels kept for a reprint
    #: zpl: a label whose send a crash cut short: "hold" (a dead letter for a person) or "reprint"
    uncertain: str = "hold"
    #: zpl: ask the printer's host status (~HS) before each label; paper out, paused, head open or
    #: ribbon out hold the label like an outage (Zebra printers answer ~HS; not every raw printer does)
    status_check: bool = False
    kinds: frozenset[str] = field(default_factory=frozenset)

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.host}:{self.port}{self.path}"

    @property
    def classes(self) -> set[str]:
        return {"business"}


_KEYS = {"type", "printer", "dpi", "timeout", "retry_cap", "batch_size", "history", "uncertain", "templates",
         "labels", "status_check"}


def parse_label_sink(c: ConfigCollector, name: str, section: dict[str, Any], path: str) -> LabelSinkConfig:
    c.unknown_keys(section, path, _KEYS)
    url = c.get(section, path, "printer", str, required=True, default="") or ""
    m = _URL.match(url)
    protocol, host, port, res = "zpl", "", 9100, ""
    if url and not m:
        c.add(f"{path}.printer", "must be zpl://host[:port] (raw TCP, Zebra-compatible) or "
                                 f"ipp[s]://host[:port]/printers/<queue> (CUPS/IPP, PDF), got {url!r}")
    elif m:
        protocol, host = m.group(1), m.group(2).strip("[]")
        port = int(m.group(3)) if m.group(3) else {"zpl": 9100, "ipp": 631, "ipps": 631}[protocol]
        res = m.group(4) or ""
        if not 0 < port < 65536:
            c.add(f"{path}.printer", f"port must be 1..65535, got {port}")
        if protocol == "zpl" and res not in ("", "/"):
            c.add(f"{path}.printer", f"a zpl:// printer has no path, got {res!r}")
        if protocol != "zpl" and not res.strip("/"):
            c.add(f"{path}.printer", f"an IPP printer needs its resource, e.g. {protocol}://{host}:{port}"
                                     "/printers/labels")
    if section.get("status_check") and protocol != "zpl":
        c.add(f"{path}.status_check", "asks a ZPL printer's host status (~HS): only for zpl:// printers")
    templates = _templates(c, section, path)
    actions = _actions(c, section, path, templates)
    return LabelSinkConfig(
        name=name, protocol=protocol, host=host, port=port, path=res if protocol != "zpl" else "",
        templates=templates, actions=actions,
        dpi=c.get(section, path, "dpi", int, default=203, choices=(152, 203, 300, 600)),
        timeout=c.get(section, path, "timeout", float, default=10.0, minimum=0.5, maximum=300),
        retry_cap=c.get(section, path, "retry_cap", float, default=60.0, minimum=0.001, maximum=3600),
        batch_size=c.get(section, path, "batch_size", int, default=50, minimum=1, maximum=1000),
        history=c.get(section, path, "history", int, default=200, minimum=0, maximum=1000),
        uncertain=c.get(section, path, "uncertain", str, default="hold", choices=("hold", "reprint")),
        status_check=bool(c.get(section, path, "status_check", bool, default=False)),
        kinds=frozenset(a.on for a in actions))


def _templates(c: ConfigCollector, section: dict[str, Any], path: str) -> dict[str, TemplateSpec]:
    out: dict[str, TemplateSpec] = {}
    raw = c.get(section, path, "templates", dict, required=True, default={}) or {}
    if "templates" in section and not raw:
        c.add(f"{path}.templates", "needs at least one template")
    for tname, spec in raw.items():
        tpath = f"{path}.templates.{tname}"
        if not _NAME.fullmatch(str(tname)):
            c.add(tpath, "template names are letters, digits, '-', '_' or '.'")
        if not isinstance(spec, dict):
            c.add(tpath, "must be a table with width_mm, height_mm and fields")
            continue
        c.unknown_keys(spec, tpath, {"width_mm", "height_mm", "fields"})
        width = c.get(spec, tpath, "width_mm", float, required=True, default=50.0, minimum=5, maximum=400)
        height = c.get(spec, tpath, "height_mm", float, required=True, default=30.0, minimum=5, maximum=400)
        fields: list[FieldSpec] = []
        raw_fields = c.get(spec, tpath, "fields", list, required=True, default=[]) or []
        if "fields" in spec and not raw_fields:
            c.add(f"{tpath}.fields", "needs at least one field")
        for i, f in enumerate(raw_fields):
            fpath = f"{tpath}.fields[{i}]"
            if not isinstance(f, dict):
                c.add(fpath, "must be a table with type, data, x_mm, y_mm")
                continue
            c.unknown_keys(f, fpath, {"type", "data", "x_mm", "y_mm", "size_mm"})
            ftype = c.get(f, fpath, "type", str, required=True, default="text", choices=FIELD_TYPES)
            data = c.get(f, fpath, "data", str, required=True, default="") or ""
            _check_placeholders(c, f"{fpath}.data", data)
            if ftype == "gs1_128" and data and not data.startswith("("):
                c.add(f"{fpath}.data", "GS1-128 data is application identifiers in parentheses, "
                                       f"e.g. (240){{product}}(10){{lot}}, got {data!r}")
            x = c.get(f, fpath, "x_mm", float, required=True, default=0.0, minimum=0, maximum=width or 400)
            y = c.get(f, fpath, "y_mm", float, required=True, default=0.0, minimum=0, maximum=height or 400)
            size = c.get(f, fpath, "size_mm", float, default=3.0 if ftype == "text" else
                         (10.0 if ftype in ("code128", "gs1_128") else 0.5), minimum=0.1, maximum=100)
            fields.append(FieldSpec(ftype or "text", data, x or 0.0, y or 0.0, size or 1.0))
        out[str(tname)] = TemplateSpec(str(tname), width or 50.0, height or 30.0, tuple(fields))
    return out


def _check_placeholders(c: ConfigCollector, path: str, text: str) -> None:
    try:
        names = [n for _, n, spec, conv in string.Formatter().parse(text) if n is not None]
    except ValueError as exc:
        c.add(path, f"not a template ({exc}); write a literal brace as {{{{ or }}}}")
        return
    for n in names:
        if n not in PLACEHOLDERS:
            c.add(path, f"unknown placeholder {{{n}}} (known: {', '.join(sorted(PLACEHOLDERS))})")


def _actions(c: ConfigCollector, section: dict[str, Any], path: str,
             templates: dict[str, TemplateSpec]) -> tuple[ActionSpec, ...]:
    out: list[ActionSpec] = []
    raw = c.get(section, path, "labels", list, required=True, default=[]) or []
    if "labels" in section and not raw:
        c.add(f"{path}.labels", "needs at least one label action ([[sinks.<name>.labels]] with on and template)")
    for i, a in enumerate(raw):
        apath = f"{path}.labels[{i}]"
        if not isinstance(a, dict):
            c.add(apath, "must be a table with on and template")
            continue
        c.unknown_keys(a, apath, {"on", "template", "every", "key", "machines", "copies"})
        on = c.get(a, apath, "on", str, required=True, default="production", choices=ACTION_KINDS)
        template = c.get(a, apath, "template", str, required=True, default="") or ""
        if template and template not in templates:
            c.add(f"{apath}.template", f"no template {template!r} under {path}.templates "
                                       f"(templates: {', '.join(sorted(templates)) or 'none'})")
        every = c.get(a, apath, "every", int, default=0, minimum=0, maximum=10_000_000) or 0
        if every and on != "production":
            c.add(f"{apath}.every", f"counts good parts: only for on = \"production\", not {on!r}")
        key = c.get(a, apath, "key", str, choices=("lot", "work_order", "operator"))
        if key is not None and on != "scan":
            c.add(f"{apath}.key", f"picks scans: only for on = \"scan\", not {on!r}")
        machines = c.get(a, apath, "machines", list, default=[]) or []
        for j, m in enumerate(machines):
            if not isinstance(m, str) or not _NAME.fullmatch(m):
                c.add(f"{apath}.machines[{j}]", f"must be a machine name, got {m!r}")
        copies = c.get(a, apath, "copies", int, default=1, minimum=1, maximum=100) or 1
        out.append(ActionSpec(on or "production", template, every, key,
                              frozenset(m for m in machines if isinstance(m, str)), copies))
    return tuple(out)
