"""Group names (``Category/Group``, as Odoo lists them in AccessError) and the model access table."""
from __future__ import annotations

INTERNAL = "User types/Internal User"
SETTINGS = "Administration/Settings"
ACCESS_RIGHTS = "Administration/Access Rights"
MRP_USER = "Manufacturing/User"
MRP_ADMIN = "Manufacturing/Administrator"
STOCK_USER = "Inventory/User"
STOCK_ADMIN = "Inventory/Administrator"
MAINTENANCE_ADMIN = "Maintenance/Equipment Manager"

ALL = [INTERNAL, SETTINGS, ACCESS_RIGHTS, MRP_USER, MRP_ADMIN, STOCK_USER, STOCK_ADMIN, MAINTENANCE_ADMIN]


def acl(read: list[str], write: list[str], create: list[str] | None = None,
        unlink: list[str] | None = None) -> dict[str, list[str]]:
    """Which groups may read / write / create / unlink a model (ir.model.access)."""
    return {"read": read, "write": write, "create": write if create is None else create,
            "unlink": write if unlink is None else unlink}
