"""Sandboxes shipped with the product: a simulated plant and an Odoo double.

Both let an integrator rehearse a deployment without a real plant or a
production ERP; each announces itself as a sandbox when it starts.
"""
