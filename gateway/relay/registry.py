"""The relay's registry of gateway public keys: gateway id -> Ed25519 public key and key id.

It owns the file (`<state>/gateways.json`, written atomically) an admin fills
with `linebridge relay register GATEWAY_ID KEY`, the key as `linebridge keys
show` prints it on the gateway (or its retained status carries it). The
fingerprint printed on registration is the key id (`kid`: SHA-256 of the raw
key, 16 hex digits), to be compared with the gateway's own. Lookups go by key
id (the one an envelope's `sig` names); the envelope's gateway id must then be
the one the key was registered for. It does not own verification itself
(`gateway.signing.verify`).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import LinebridgeError
from gateway.files import atomic_write
from gateway.signing import PublicKey


class RegistryError(LinebridgeError):
    """The registry file cannot be read or a registration is refused."""


@dataclass(frozen=True)
class Registered:
    gateway: str
    key: PublicKey
    since: float


class Registry:
    """Registered gateways, read once; `reload()` after an admin changed the file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.by_kid: dict[str, Registered] = {}
        self.by_gateway: dict[str, Registered] = {}
        self._mtime: float | None = None
        self.reload()

    def reload(self) -> bool:
        """Read the file again if it changed; True when it did."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime and (mtime is not None or not self.by_kid):
            return False
        entries: dict[str, Registered] = {}
        if mtime is not None:
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
                for gw, spec in raw.get("gateways", {}).items():
                    entries[gw] = Registered(gw, PublicKey.parse(spec["public_key"]), float(spec.get("since", 0)))
            except (OSError, ValueError, KeyError, TypeError, AttributeError, LinebridgeError) as exc:
                self._mtime = mtime    # reported once per change of the file, not on every batch
                raise RegistryError(f"cannot read the gateway registry {self.path}: {exc}") from exc
        self.by_gateway = entries
        self.by_kid = {r.key.kid: r for r in entries.values()}
        self._mtime = mtime
        return True

    def register(self, gateway: str, key_text: str) -> Registered:
        """Add or replace `gateway`'s key; refused when the key is already another gateway's."""
        if not gateway or any(ch in gateway for ch in "+#/\x00"):
            raise RegistryError(f"not a gateway id: {gateway!r}")
        key = PublicKey.parse(key_text)
        other = self.by_kid.get(key.kid)
        if other is not None and other.gateway != gateway:
            raise RegistryError(f"key {key.kid} is already registered for gateway {other.gateway!r}")
        entry = Registered(gateway, key, time.time())
        entries = dict(self.by_gateway, **{gateway: entry})
        self._write(entries)
        return entry

    def remove(self, gateway: str) -> bool:
        if gateway not in self.by_gateway:
            return False
        self._write({g: r for g, r in self.by_gateway.items() if g != gateway})
        return True

    def _write(self, entries: dict[str, Registered]) -> None:
        body = {"gateways": {g: {"public_key": r.key.b64, "kid": r.key.kid, "since": r.since}
                             for g, r in sorted(entries.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, (json.dumps(body, indent=2) + "\n").encode("utf-8"))
        self._mtime = None
        self.by_kid = {}
        self.reload()
