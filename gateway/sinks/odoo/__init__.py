"""The Odoo sink: client, master-data lookups and one poster per event kind."""
from gateway.sinks.odoo.client import OdooClient
from gateway.sinks.odoo.sink import OdooSink

__all__ = ["OdooClient", "OdooSink"]
