"""An honest Odoo double (17.0 by default, 16.0 to 19.0 on request): JSON-RPC, XML-RPC and
Odoo 19's JSON-2 with Odoo's formats, rules and errors, and run-time fault injection.

Tests and the product's demo run against it because Odoo itself is not
installable on the appliance's build hosts.  The ground truth is the set of
Odoo 17 wire captures in ``tests/fixtures/odoo-wire``.  Modules: ``server``
(HTTP and envelopes, :class:`OdooSandbox`), ``service`` (RPC services and
transactions), ``orm``/``fields``/``domain``/``load`` (generic model
behaviour), ``models`` (the Odoo models), ``demo`` (fresh-database data),
``errors`` (exception types and renderings), ``persist`` (atomic file),
``versions`` (what each series reports and changes), ``json2`` (the JSON-2
API), ``faults`` (injected latency, proxy errors, drops, serialization
failures, bad keys).
"""
from __future__ import annotations

from .server import OdooSandbox

__all__ = ["OdooSandbox"]
