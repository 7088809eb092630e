"""Driver registry: maps a device's `type` to its driver class via entry points.

Drivers register under the `linebridge.drivers` entry-point group (the
built-in ones in pyproject.toml), so a third-party driver is just an installed
package. A driver module is imported only when a configuration uses it. The
entry points are read once per process (reading them scans every installed
package's metadata: ~45 ms, and validation asked once per device); a driver
installed later is seen after a restart, as its code would be anyway; the
services' group (`gateway.services`) is read from the same scan.
A driver's library is an extra of its package, named on its entry point
(`drivers.opcua:OpcUaDriver [opcua]`): when it is not installed, loading the
driver raises `MissingExtra` with the pip command that installs it.
"""
from __future__ import annotations

from functools import lru_cache
from importlib.metadata import EntryPoints, entry_points

from drivers.base import Driver
from gateway.extras import extra_of, missing_message

#: the packages of this distribution: a module missing under these is a bug, not an extra
_OWN = {"drivers", "gateway", "store", "webui"}


class MissingExtra(ImportError):
    """A configured driver's library is not installed; the message says what to pip install."""


def _load(spec: str, extras: str, dist: str) -> type[Driver]:
    module, _, attr = spec.partition(":")
    try:
        mod = __import__(module, fromlist=[attr])
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        if not top or top in _OWN:
            raise
        raise MissingExtra(missing_message(extras or extra_of(top), exc.name or top, dist)) from exc
    return getattr(mod, attr)


def driver_types() -> dict[str, str]:
    """Every known driver type and where its class lives."""
    return {name: spec for name, spec, _, _ in _entry_points()}


@lru_cache(maxsize=1)
def _installed() -> EntryPoints:
    return entry_points()


def group(name: str) -> EntryPoints:
    """The entry points of group `name`, from one scan of the installed packages per process."""
    return _installed().select(group=name)


@lru_cache(maxsize=1)
def _entry_points() -> tuple[tuple[str, str, str, str], ...]:
    out = []
    for ep in group("linebridge.drivers"):
        dist = ep.dist.name if ep.dist is not None else "linebridge"
        out.append((ep.name, f"{ep.module}:{ep.attr}", ",".join(ep.extras), dist))
    return tuple(out)


def driver_class(type_name: str) -> type[Driver] | None:
    """The class of a driver type, None when unknown; MissingExtra when its library is not installed."""
    for name, spec, extras, dist in _entry_points():
        if name == type_name:
            return _load(spec, extras, dist)
    return None
