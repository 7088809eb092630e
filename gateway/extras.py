"""Optional dependencies: which extra of the package brings which library, and the pip command when one is missing.

Driver, sink and service libraries are extras of the `linebridge` package
(`modbus`, `serial`, `opcua`, `mqtt`, `odoo`, `webui`, `sql-postgres`, `sql-mariadb`, `labels`, `all`), so an
installation carries, and a process imports, only what its configuration uses.
This module owns the table of extras and the check `missing()` that
configuration validation runs for every configured part: it looks the
libraries up without importing them. Drivers declare their extra on their
entry point (`opcua = "drivers.opcua:OpcUaDriver [opcua]"`); see
`gateway.registry`.
"""
from __future__ import annotations

import importlib.util

#: the top-level modules each extra installs (as pyproject.toml's optional dependencies)
EXTRAS: dict[str, tuple[str, ...]] = {
    "modbus": ("pymodbus", "minimalmodbus", "serial"),
    "serial": ("serial",),
    "opcua": ("asyncua",),
    "mqtt": ("paho.mqtt",),
    "odoo": ("httpx",),
    "webui": ("flask", "cheroot", "tomlkit"),
    "sql-postgres": ("psycopg",),
    "sql-mariadb": ("pymysql",),
    "labels": ("fpdf", "zxingcpp"),
}


def extra_of(module: str) -> str:
    """The first extra that installs top-level `module` (the module's own name when none does)."""
    return next((extra for extra, mods in EXTRAS.items() if module in {m.partition(".")[0] for m in mods}), module)


def pip_command(extra: str, dist: str = "linebridge") -> str:
    return f"pip install '{dist}[{extra}]'"


def missing_message(extra: str, module: str, dist: str = "linebridge") -> str:
    return f"needs the Python package {module!r}, which is not installed: {pip_command(extra, dist)}"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package missing, or refused by an import hook
        return False


def missing(extra: str) -> str | None:
    """None when every library of `extra` can be imported, else what to tell the user."""
    for module in EXTRAS[extra]:
        if not _installed(module):
            return missing_message(extra, module)
    return None
