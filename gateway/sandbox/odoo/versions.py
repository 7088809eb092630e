"""Which Odoo series the sandbox plays (16.0 to 19.0), and what each one reports.

Owns the version value object: parsing what a constructor or a command line
gives ("19", "19.0", 19), the ``common.version`` payload, ``/web/version`` and
the feature switches the other modules ask about (JSON-2 from 19, the
``quantity_done`` of 16 instead of ``quantity`` + ``picked``, the storable
flag of 18+).  It does not change any behaviour itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SUPPORTED = (16, 17, 18, 19)


@dataclass(frozen=True)
class OdooVersion:
    major: int

    @classmethod
    def parse(cls, value: "OdooVersion | str | int | float") -> "OdooVersion":
        if isinstance(value, OdooVersion):
            return value
        text = str(value).strip()
        try:
            major = int(float(text)) if text.replace(".", "", 1).isdigit() else int(text)
        except ValueError:
            raise ValueError(f"unknown Odoo version {value!r}: use one of "
                             f"{', '.join(f'{m}.0' for m in SUPPORTED)}") from None
        if major not in SUPPORTED:
            raise ValueError(f"unsupported Odoo version {value!r}: use one of "
                             f"{', '.join(f'{m}.0' for m in SUPPORTED)}")
        return cls(major)

    @property
    def server_version(self) -> str:
        return f"{self.major}.0"

    @property
    def version_info(self) -> list[Any]:
        return [self.major, 0, 0, "final", 0, ""]

    def exp_version(self) -> dict[str, Any]:
        """``common.version`` (odoo/service/common.py exp_version)."""
        return {"server_version": self.server_version, "server_version_info": self.version_info,
                "server_serie": self.server_version, "protocol_version": 1}

    def web_version(self) -> dict[str, Any]:
        """``GET /web/version``: release.version_info then release.version, as Odoo orders them."""
        return {"version_info": self.version_info, "version": self.server_version}

    @property
    def has_json2(self) -> bool:
        return self.major >= 19

    @property
    def move_uses_quantity_done(self) -> bool:
        """Odoo 16 stock.move: ``quantity_done``; 17+: ``quantity`` and ``picked``."""
        return self.major <= 16

    @property
    def product_has_is_storable(self) -> bool:
        """Odoo 18+: product type 'product' is gone, storable goods are 'consu' with ``is_storable``."""
        return self.major >= 18


DEFAULT = OdooVersion(17)
