"""An honest Odoo 17 double: JSON-RPC and XML-RPC with Odoo's formats, rules and errors.

Tests and the product's demo run against it because Odoo itself is not
installable on the appliance's build hosts.  The ground truth is the set of
Odoo 17 wire captures in ``tests/fixtures/odoo-wire``.  Modules: ``server``
(HTTP and envelopes, :class:`OdooSandbox`), ``service`` (RPC services and
transactions), ``orm``/``fields``/``domain``/``load`` (generic model
behaviour), ``models`` (the Odoo models), ``demo`` (fresh-database data),
``errors`` (exception types and renderings), ``persist`` (atomic file).
"""
from __future__ import annotations

from .server import OdooSandbox

__all__ = ["OdooSandbox"]
