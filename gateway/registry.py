"""Driver and service registry: maps a device's `type` to its driver class, and finds the services, via entry points.

Drivers register under the `linebridge.drivers` entry-point group (the
built-in ones in pyproject.toml), so a third-party driver is just an installed
package. A driver module is imported only when a configuration uses it. The
services' group is `linebridge.services`.

The entry points are read once per process, from each installed
distribution's `entry_points.txt` (the format of the PyPA entry-points
specification) along `sys.path`, first distribution of a name wins, as
`importlib.metadata` does it. Reading the files directly takes a few
milliseconds; `importlib.metadata` would import `email`, `zipfile` and their
kin on every start (~50 ms and ~5 MiB of resident memory, 10 % of a Modbus +
MQTT gateway's). A driver installed later is seen after a restart, as its code
would be anyway.

A driver's library is an extra of its package, named on its entry point
(`drivers.opcua:OpcUaDriver [opcua]`): when it is not installed, loading the
driver raises `MissingExtra` with the pip command that installs it.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from drivers.base import Driver
from gateway.extras import extra_of, missing_message

#: the packages of this distribution: a module missing under these is a bug, not an extra
_OWN = {"drivers", "gateway", "store", "webui"}

_SECTION = re.compile(r"^\[\s*([^\]]+?)\s*\]$")
# name = module:attr [extra1, extra2] (attr and extras optional)
_ENTRY = re.compile(r"^([^=\s][^=]*?)\s*=\s*([\w.]+)\s*(?::\s*([\w.]+))?\s*(?:\[\s*([^\]]*)\])?\s*$")


class MissingExtra(ImportError):
    """A configured driver's library is not installed; the message says what to pip install."""


@dataclass(frozen=True)
class EntryPoint:
    """One entry point: `name = module:attr [extras]` of distribution `dist`."""

    name: str
    group: str
    module: str
    attr: str
    extras: tuple[str, ...]
    dist: str

    @property
    def spec(self) -> str:
        return f"{self.module}:{self.attr}" if self.attr else self.module

    def load(self) -> Any:
        mod = __import__(self.module, fromlist=[self.attr] if self.attr else [])
        return getattr(mod, self.attr) if self.attr else mod


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(text: str, dist: str) -> list[EntryPoint]:
    """The entry points of one `entry_points.txt`; lines that are not entries are ignored, as the spec's readers do."""
    out: list[EntryPoint] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = _SECTION.match(line)
        if m:
            section = m.group(1)
            continue
        m = _ENTRY.match(line)
        if m and section:
            extras = tuple(e.strip() for e in (m.group(4) or "").split(",") if e.strip())
            out.append(EntryPoint(m.group(1), section, m.group(2), m.group(3) or "", extras, dist))
    return out


def _dist_name(folder: str) -> str:
    """`linebridge-0.1.0.dist-info` -> `linebridge` (the name's escaped form has no `-`)."""
    stem = folder.rsplit(".", 1)[0]
    return stem.split("-", 1)[0]


@lru_cache(maxsize=1)
def _installed() -> tuple[EntryPoint, ...]:
    out: list[EntryPoint] = []
    seen: set[str] = set()
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:  # a zip file or a missing folder on the path
            continue
        for folder in names:
            if not folder.endswith((".dist-info", ".egg-info")):
                continue
            dist = _dist_name(folder)
            if _normalize(dist) in seen:
                continue
            seen.add(_normalize(dist))
            try:
                with open(os.path.join(entry or ".", folder, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError):
                continue
            out.extend(parse(text, dist))
    return tuple(out)


def group(name: str) -> list[EntryPoint]:
    """The entry points of group `name`, from one scan of the installed packages per process."""
    return [ep for ep in _installed() if ep.group == name]


def _load(ep: EntryPoint) -> type[Driver]:
    try:
        return ep.load()
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        if not top or top in _OWN:
            raise
        raise MissingExtra(missing_message(",".join(ep.extras) or extra_of(top), exc.name or top, ep.dist)) from exc


def driver_types() -> dict[str, str]:
    """Every known driver type and where its class lives."""
    return {ep.name: ep.spec for ep in group("linebridge.drivers")}


def driver_class(type_name: str) -> type[Driver] | None:
    """The class of a driver type, None when unknown; MissingExtra when its library is not installed."""
    for ep in group("linebridge.drivers"):
        if ep.name == type_name:
            return _load(ep)
    return None
