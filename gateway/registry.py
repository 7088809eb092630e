"""Driver registry: maps a device's `type` to its driver class via entry points.

Drivers register under the `linebridge.drivers` entry-point group (the
built-in ones in pyproject.toml), so a third-party driver is just an installed
package. A driver module is imported only when a configuration uses it. The
entry points are read once per process (reading them scans every installed
package's metadata: ~45 ms, and validation asked once per device); a driver
installed later is seen after a restart, as its code would be anyway.
"""
from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points

from drivers.base import Driver


def _load(spec: str) -> type[Driver]:
    module, _, attr = spec.partition(":")
    mod = __import__(module, fromlist=[attr])
    return getattr(mod, attr)


def driver_types() -> dict[str, str]:
    """Every known driver type and where its class lives."""
    return dict(_entry_points())


@lru_cache(maxsize=1)
def _entry_points() -> tuple[tuple[str, str], ...]:
    return tuple((ep.name, ep.value) for ep in entry_points(group="linebridge.drivers"))


def driver_class(type_name: str) -> type[Driver] | None:
    spec = driver_types().get(type_name)
    return _load(spec) if spec else None
