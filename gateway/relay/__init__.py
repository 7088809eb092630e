"""The central relay: signed events from a broker, authenticated, stored, posted to Odoo once."""
