"""The configuration file as the console edits it: validate, save atomically, keep history, roll back.

It owns every write to the gateway's TOML file and the history beside the
state (`<state>/webui/history/NNNNNN.toml` with a `.json` record of who, when
and what). A change is one section put or deleted (`devices.cnc01`,
`sinks.odoo`, ...) on a tomlkit document, so a technician's comments and layout
elsewhere in the file survive. Each change is validated with
`gateway.config.parse`, the same validator as `linebridge check-config`, and
refused with every problem listed; a change made against an older version
than the one on disk is refused too (no silent revert of someone else's edit).
Saving writes a temporary file, fsyncs it, renames it over the old one and
fsyncs the directory. Secrets (API keys, passwords) never leave through `view`:
they show as a placeholder, and a placeholder sent back keeps the stored value.
"""
from __future__ import annotations

import difflib
import re
import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import tomlkit

from gateway import config as config_mod
from gateway.errors import ConfigError
from gateway.files import atomic_write

SECRET_KEYS = {"api_key", "password", "token", "secret", "private_key_password"}
REDACTED = "********"
SECTIONS = ("devices", "machines", "rules", "sinks")


class ConfigConflict(Exception):
    """The file changed since the client read it."""


class ConfigRejected(Exception):
    """The change does not validate; `problems` says why, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def version_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if k in SECRET_KEYS and v else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _keep_secrets(new: Any, old: Any, path: str) -> Any:
    """`new` with every placeholder secret replaced by the stored value (refused when none is stored)."""
    if not isinstance(new, dict):
        return new
    old = old if isinstance(old, dict) else {}
    out = {}
    for k, v in new.items():
        if k in SECRET_KEYS and v == REDACTED:
            if not old.get(k):
                raise ConfigRejected([f"{path}.{k}: enter the secret itself; there is no stored one to keep"])
            out[k] = old[k]
        else:
            out[k] = _keep_secrets(v, old.get(k), f"{path}.{k}")
    return out


def _merge(table: Any, new: dict[str, Any]) -> None:
    """Make the tomlkit `table` hold `new`, touching only what differs (comments and layout survive)."""
    for key in [k for k in table if k not in new]:
        del table[key]
    for key, value in new.items():
        current = table.get(key)
        if isinstance(value, dict) and isinstance(current, (tomlkit.items.Table, tomlkit.items.InlineTable)):
            _merge(current, value)
        elif current is None or _plain(current) != value:
            table[key] = value


def _plain(item: Any) -> Any:
    return item.unwrap() if hasattr(item, "unwrap") else item


class ConfigFile:
    """One configuration file with its history; all methods are safe across threads."""

    def __init__(self, path: Path, state_dir: Path) -> None:
        self.path = Path(path)
        self.history_dir = Path(state_dir) / "webui" / "history"
        self.history_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    # -- reading -----------------------------------------------------------
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def version(self) -> str:
        return version_of(self.text())

    def view(self) -> dict[str, Any]:
        """The whole file as plain data, secrets redacted, with its version."""
        text = self.text()
        return {"version": version_of(text), "config": redact(tomlkit.parse(text).unwrap())}

    def section(self, kind: str, name: str) -> dict[str, Any] | None:
        data = tomlkit.parse(self.text()).unwrap()
        found = (data.get(kind) or {}).get(name)
        return redact(found) if found is not None else None

    # -- changing ----------------------------------------------------------
    def put(self, kind: str, name: str, table: dict[str, Any] | None, who: str,
            base_version: str | None = None) -> tuple[config_mod.Config, dict[str, Any]]:
        """Put (or with None delete) `[kind.name]`; returns the new Config and the history entry."""
        with self._lock:
            text = self.text()
            if base_version is not None and base_version != version_of(text):
                raise ConfigConflict("the configuration changed since you loaded it; reload and try again")
            new, what = self._render(text, kind, name, table)
            return self._save(text, new, who, what)

    def preview(self, kind: str, name: str, table: dict[str, Any] | None) -> config_mod.Config:
        """The Config the file would give with this change, without saving it (test reads, checks)."""
        new, _ = self._render(self.text(), kind, name, table)
        return self.validate_text(new)

    def _render(self, text: str, kind: str, name: str, table: dict[str, Any] | None) -> tuple[str, str]:
        if kind not in SECTIONS and kind != "shifts":
            raise ConfigRejected([f"{kind}: not a section the console edits"])
        if table is not None and not isinstance(table, dict):
            raise ConfigRejected([f"{kind}.{name}: must be a table (a JSON object)"])
        doc = tomlkit.parse(text)
        if kind == "shifts":
            old = doc.get("shifts")
            if table is None:
                doc.pop("shifts", None)
            else:
                table = _keep_secrets(table, old.unwrap() if old is not None else None, "shifts")
                if isinstance(old, tomlkit.items.Table):
                    _merge(old, table)
                else:
                    doc["shifts"] = table
            return tomlkit.dumps(doc), "shift calendar " + ("removed" if table is None else "changed")
        parent = doc.get(kind)
        old = parent.get(name) if parent is not None else None
        if table is None:
            if old is None:
                raise ConfigRejected([f"{kind}.{name}: does not exist"])
            del parent[name]
            return tomlkit.dumps(doc), f"{kind}.{name} deleted"
        if parent is None:
            doc[kind] = tomlkit.table(is_super_table=True)
            parent = doc[kind]
        table = _keep_secrets(table, old.unwrap() if old is not None else None, f"{kind}.{name}")
        if isinstance(old, tomlkit.items.Table):
            _merge(old, table)
        else:
            parent[name] = table
        return tomlkit.dumps(doc), f"{kind}.{name} {'changed' if old is not None else 'added'}"

    def rollback(self, entry_id: int, who: str) -> tuple[config_mod.Config, dict[str, Any]]:
        """Make the file what it was after history entry `entry_id` (itself a new, audited change)."""
        with self._lock:
            target = self.history_dir / f"{entry_id:06d}.toml"
            if not target.exists():
                raise ConfigRejected([f"history entry {entry_id} does not exist"])
            return self._save(self.text(), target.read_text(encoding="utf-8"), who, f"rollback to #{entry_id}")

    def replace(self, text: str, who: str, base_version: str | None = None) -> tuple[config_mod.Config, dict[str, Any]]:
        """Replace the whole file (the console's raw editor)."""
        with self._lock:
            old = self.text()
            if base_version is not None and base_version != version_of(old):
                raise ConfigConflict("the configuration changed since you loaded it; reload and try again")
            return self._save(old, text, who, "whole file edited")

    def validate_text(self, text: str) -> config_mod.Config:
        try:
            return config_mod.parse(text, source=self.path.name)
        except ConfigError as exc:
            raise ConfigRejected(exc.problems) from exc

    def _save(self, old: str, new: str, who: str, what: str) -> tuple[config_mod.Config, dict[str, Any]]:
        cfg = self.validate_text(new)
        if not self._entries():
            self._record(old, "as found", "the file before the first change from the console")
        atomic_write(self.path, new)
        return cfg, self._record(new, who, what)

    # -- history -----------------------------------------------------------
    def _entries(self) -> list[int]:
        return sorted(int(p.stem) for p in self.history_dir.glob("*.json"))

    def _record(self, text: str, who: str, what: str) -> dict[str, Any]:
        ids = self._entries()
        n = (ids[-1] + 1) if ids else 0
        entry = {"id": n, "who": who, "when": round(time.time(), 3), "what": what, "version": version_of(text)}
        atomic_write(self.history_dir / f"{n:06d}.toml", text)
        atomic_write(self.history_dir / f"{n:06d}.json", json.dumps(entry, sort_keys=True))
        return entry

    def history(self) -> list[dict[str, Any]]:
        out = []
        for n in reversed(self._entries()):
            out.append(json.loads((self.history_dir / f"{n:06d}.json").read_text(encoding="utf-8")))
        return out

    def diff(self, entry_id: int) -> str:
        """What entry `entry_id` changed against the entry before it (secrets masked)."""
        cur = self.history_dir / f"{entry_id:06d}.toml"
        if not cur.exists():
            raise ConfigRejected([f"history entry {entry_id} does not exist"])
        prev = self.history_dir / f"{entry_id - 1:06d}.toml"
        before = prev.read_text(encoding="utf-8") if prev.exists() else ""
        lines = difflib.unified_diff(_mask(before).splitlines(), _mask(cur.read_text(encoding="utf-8")).splitlines(),
                                     f"#{entry_id - 1}", f"#{entry_id}", lineterm="")
        return "\n".join(lines)


_SECRET_VALUE = re.compile(
    r"""(?P<key>(?P<q>["']?)(?:%s)(?P=q)\s*=\s*)(?:"(?:[^"\\]|\\.)*"|'[^']*'|[^,}\s]+)"""
    % "|".join(sorted(SECRET_KEYS)))


def _mask(text: str) -> str:
    """`text` with the value of every secret key masked, bare, quoted or in an inline table."""
    return _SECRET_VALUE.sub(lambda m: f'{m.group("key")}"{REDACTED}"', text)

