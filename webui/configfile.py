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
they show as a placeholder, and a placeholder sent back (in a section or in
the whole file) keeps the stored value. History diffs are made from the parsed
TOML with every secret masked, whatever string form or key spelling the file
uses; a secret that changed shows as "secret changed", never its value.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import threading
import time
import tomllib
from pathlib import Path
from typing import Any, Callable

import tomlkit

from gateway import config as config_mod
from gateway.errors import ConfigError
from gateway.files import atomic_write

SECRET_KEYS = {"api_key", "password", "token", "secret", "private_key_password"}
REDACTED = "********"
CHANGED = REDACTED + " (secret changed)"
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

    def __init__(self, path: Path, state_dir: Path, layers: list[Path] | None = None) -> None:
        self.path = Path(path)
        #: the files under this one (`run --config site.toml --config line3.toml`: site.toml); an
        #: edit is validated merged with them, as the gateway will load it
        self.layers = [Path(p) for p in layers or []]
        self.state_dir = Path(state_dir)
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
        found = self.stored(kind, name)
        return redact(found) if found is not None else None

    def stored(self, kind: str, name: str) -> dict[str, Any] | None:
        """The section as saved, secrets and all: for comparisons inside the console, never for an answer."""
        found = (tomllib.loads(self.text()).get(kind) or {}).get(name)
        return found if isinstance(found, dict) else None

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
        if table is not None and (nulls := _nulls(table, f"{kind}.{name}")):
            raise ConfigRejected([f"{path}: TOML has no null; leave the key out instead" for path in nulls])
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

    def rollback(self, entry_id: int, who: str, check: Check | None = None) -> tuple[config_mod.Config, dict[str, Any]]:
        """Make the file what it was after history entry `entry_id` (itself a new, audited change).

        `check(old_text, new_text, new_text)` may refuse it (by raising) before anything is written.
        """
        with self._lock:
            target = self.history_dir / f"{entry_id:06d}.toml"
            if not target.exists():
                raise ConfigRejected([f"history entry {entry_id} does not exist"])
            old, new = self.text(), target.read_text(encoding="utf-8")
            if check is not None:
                check(old, new, new)
            return self._save(old, new, who, f"rollback to #{entry_id}")

    def replace(self, text: str, who: str, base_version: str | None = None,
                check: Check | None = None) -> tuple[config_mod.Config, dict[str, Any]]:
        """Replace the whole file (the console's raw editor); a placeholder keeps the stored secret.

        `check(old_text, new_text, submitted_text)` may refuse it (by raising) before anything is written;
        `new_text` has the stored secrets in place of placeholders, `submitted_text` is as sent.
        """
        with self._lock:
            old = self.text()
            if base_version is not None and base_version != version_of(old):
                raise ConfigConflict("the configuration changed since you loaded it; reload and try again")
            new = keep_secrets_in_text(text, old)
            if check is not None:
                check(old, new, text)
            return self._save(old, new, who, "whole file edited")

    def validate_text(self, text: str) -> config_mod.Config:
        try:
            below = [(p.name, config_mod.read_text(p)) for p in self.layers]
            return config_mod.parse_layers([*below, (self.path.name, text)], state_dir=self.state_dir)
        except ConfigError as exc:
            raise ConfigRejected(exc.problems) from exc

    def _save(self, old: str, new: str, who: str, what: str) -> tuple[config_mod.Config, dict[str, Any]]:
        cfg = self.validate_text(new)
        if not self._entries():
            self._record(old, "as found", "the file before the first change from the console")
        changed = secrets_changed(old, new)
        if changed:
            what += "; secret changed: " + ", ".join(changed)
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
        lines = difflib.unified_diff(_mask(before).splitlines(),
                                     _mask(cur.read_text(encoding="utf-8"), before).splitlines(),
                                     f"#{entry_id - 1}", f"#{entry_id}", lineterm="")
        return "\n".join(lines)


#: check(old text, new text as it would be saved, the text as submitted): raises to refuse
Check = Callable[[str, str, str], None]


def _parsed(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def _secret_paths(data: Any, path: str = "") -> dict[str, Any]:
    """Every secret in parsed TOML by its key path (tables, inline tables, arrays of tables)."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            p = f"{path}.{k}" if path else str(k)
            if k in SECRET_KEYS and not isinstance(v, dict):
                out[p] = v
            else:
                out.update(_secret_paths(v, p))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.update(_secret_paths(v, f"{path}[{i}]"))
    return out


def secrets_changed(old: str, new: str) -> list[str]:
    """The key paths of secrets set, changed or removed between two versions of the file (never values)."""
    a, b = _secret_paths(_parsed(old)), _secret_paths(_parsed(new))
    return sorted(p for p in a.keys() | b.keys() if a.get(p) != b.get(p))


def _each_secret(doc: Any, fn: Callable[[Any, str, str, Any], None]) -> None:
    """Call `fn(container, key, path, item)` for every secret key of a tomlkit document, wherever it sits:
    tables (dotted or not), inline tables, arrays of tables, inline tables inside arrays."""
    def walk(container: Any, path: str) -> None:
        for key in list(container.keys()):
            item = container[key]
            p = f"{path}.{key}" if path else str(key)
            if key in SECRET_KEYS and not isinstance(item, (tomlkit.items.Table, tomlkit.items.InlineTable,
                                                            tomlkit.items.AoT, dict)):
                fn(container, key, p, item)
            elif isinstance(item, (tomlkit.items.Table, tomlkit.items.InlineTable, dict)):
                walk(item, p)
            elif isinstance(item, (tomlkit.items.AoT, tomlkit.items.Array, list)):
                for i, v in enumerate(item):
                    if isinstance(v, (tomlkit.items.Table, tomlkit.items.InlineTable, dict)):
                        walk(v, f"{p}[{i}]")
    walk(doc, "")


def keep_secrets_in_text(text: str, old: str) -> str:
    """`text` with each placeholder secret replaced by the value stored at the same key path in `old`.

    A placeholder where nothing is stored is refused: it would become the secret.
    """
    try:
        doc = tomlkit.parse(text)
    except Exception:   # tomlkit's parse errors have no common base; the validator words the problem
        return text
    stored = _secret_paths(_parsed(old))
    problems: list[str] = []

    def keep(container: Any, key: str, path: str, item: Any) -> None:
        if _plain(item) != REDACTED:
            return
        if path in stored and stored[path] != REDACTED:
            container[key] = stored[path]
        else:
            problems.append(f"{path}: enter the secret itself; there is no stored one to keep")
    _each_secret(doc, keep)
    if problems:
        raise ConfigRejected(problems)
    return tomlkit.dumps(doc)


def _mask(text: str, before: str | None = None) -> str:
    """`text` with the value of every secret masked, found on the parsed TOML (any string form, any key
    spelling); with `before`, a secret whose value differs from it reads "secret changed"."""
    try:
        doc = tomlkit.parse(text)
    except Exception:   # not TOML: it may hold a secret in any form, so none of it is shown
        return "(this version is not valid TOML; it is not shown, it may hold a secret)"
    old = _secret_paths(_parsed(before)) if before is not None else None

    def mask(container: Any, key: str, path: str, item: Any) -> None:
        container[key] = CHANGED if old is not None and old.get(path) != _plain(item) else REDACTED
    _each_secret(doc, mask)
    return tomlkit.dumps(doc)


def _nulls(value: Any, path: str) -> list[str]:
    """Key paths holding a JSON null (TOML has none), in tables and lists at any depth."""
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls(v, f"{path}[{i}]")]
    return []
