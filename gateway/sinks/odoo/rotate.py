"""An Odoo API key rotation: check the new key, store it atomically, name the old one for revocation.

It owns the steps `linebridge odoo rotate-key` and the console's rotation share:
the new key is checked against the configured Odoo with `odoo check`'s key
findings (reach, login, apps, model access of the key's user) and refused on a
blocker, before anything is written; then it replaces the old key where the
configuration keeps it (`gateway.credentials.store`: a secret file or the TOML
file that holds it inline, new file + fsync + rename). A running gateway takes it
from its next Odoo call on (`OdooSink.key_watch`), without a restart; the old
key keeps working in Odoo until a person revokes it, so nothing in flight is
refused. The report names both keys by fingerprint only.
It does not own the swap inside a running sink (`OdooSink.rotate_key`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from gateway import config as config_mod
from gateway.config import Config, OdooSinkConfig
from gateway.credentials import CredentialError, Source, fingerprint, locate, store
from gateway.sinks.odoo.check import Finding, check

log = logging.getLogger("linebridge.rotation")


class RotationRefused(CredentialError):
    """The new key was not stored; `findings` say why (none of them holds a key)."""

    def __init__(self, message: str, findings: list[Finding] | None = None) -> None:
        super().__init__(message)
        self.findings = findings or []


@dataclass
class Rotation:
    sink: str
    url: str
    database: str
    login: str
    source: str                    # where the key now is (a file path and key path; never the key)
    old: str                       # fingerprints
    new: str
    findings: list[Finding] = field(default_factory=list)

    def lines(self) -> list[str]:
        return ([f"sink {self.sink}: {f}" for f in self.findings]
                + [f"sink {self.sink}: new API key {self.new} stored in {self.source}; a running gateway uses it "
                   "from its next call",
                   f"sink {self.sink}: revoke the old API key {self.old} in Odoo at {self.url} (database "
                   f"{self.database}, user {self.login}: Preferences > Account Security > API Keys)"])


def odoo_sink(cfg: Config, name: str | None) -> OdooSinkConfig:
    sinks = cfg.sinks_of(OdooSinkConfig)
    if name is None:
        if len(sinks) != 1:
            raise RotationRefused(f"name the Odoo sink with --sink (this configuration has "
                                  f"{', '.join(sorted(sinks)) or 'none'})")
        return next(iter(sinks.values()))
    if name not in sinks:
        raise RotationRefused(f"no Odoo sink {name!r} (Odoo sinks: {', '.join(sorted(sinks)) or 'none'})")
    return sinks[name]


async def rotate(paths: list[Path], new_key: str, sink_name: str | None = None,
                 state_dir: Path | None = None, by: str = "cli") -> Rotation:
    """Check `new_key` against the sink's Odoo, then store it; RotationRefused (nothing written) when not."""
    cfg = config_mod.load(list(paths), state_dir=state_dir)
    sink = odoo_sink(cfg, sink_name)
    new_key = new_key.strip()
    if not new_key:
        raise RotationRefused("the new API key is empty")
    if new_key == sink.api_key:
        raise RotationRefused(f"the new API key is the one in use ({fingerprint(new_key)})")
    source: Source = locate(list(paths), sink.name, "api_key")
    if source.kind == "env":
        store(source, new_key)            # raises: what to do instead, in words
    findings = await check(cfg, replace(sink, api_key=new_key), key_only=True)
    blockers = [f for f in findings if f.level == "blocker"]
    if blockers:
        log.warning("event=credential_rotation_refused sink=%s new=%s blockers=%d by=%s", sink.name,
                    fingerprint(new_key), len(blockers), by)
        raise RotationRefused(f"the new API key {fingerprint(new_key)} was not stored: "
                              f"{len(blockers)} blocker(s)", findings)
    store(source, new_key)
    out = Rotation(sink.name, sink.url, sink.database, sink.login, source.describe(),
                   fingerprint(sink.api_key), fingerprint(new_key), findings)
    log.warning("event=credential_stored sink=%s api_key=%s old=%s source=%s by=%s revoke=old", sink.name,
                out.new, out.old, source.kind, by)
    return out
