"""The console's bounds on a change: which role may change which section, and where a stored secret may go.

Technicians change what the shop floor is made of: devices (with their tags),
rules, machines and shifts. Everything else in the file (sink destinations and
credentials, `[webui]`, `[store]`, `[files]`, `[gateway]`, `[heartbeat]`) and
the users and system settings are the admin's. A whole-file edit or a rollback
by someone who may not change an admin section is refused when it touches
one, naming the sections.

A secret kept in the configuration (typed earlier, or named by `*_env` or
`*_file`) goes only to the destination it was saved with. A connection test
or test read of an unsaved section whose destination (URL, endpoint, host,
port, database, login, user name) differs from the saved one must carry the
secret typed in the request; so must a technician's saved device section.
This module decides; `webui.api` asks it before anything is sent or saved.
"""
from __future__ import annotations

import tomllib
from typing import Any

from webui.configfile import REDACTED, SECRET_KEYS

#: the sections a technician may change (the rest of the file is the admin's)
TECHNICIAN_SECTIONS = ("devices", "rules", "machines", "shifts")
#: what says where a section's connection goes, and how safely: a change of any of these is a new
#: destination (a weaker security mode or no TLS towards the same server counts too)
DESTINATION_KEYS = ("type", "url", "endpoint", "host", "port", "database", "login", "username",
                    "security_policy", "security_mode", "tls")


class Refused(Exception):
    """The session's role may not make this change; the message names what it touched."""


def admin_sections_changed(old: str, new: str) -> list[str]:
    """The top-level sections outside TECHNICIAN_SECTIONS that differ between two versions of the file."""
    try:
        a = tomllib.loads(old)
    except tomllib.TOMLDecodeError:
        a = {}
    try:
        b = tomllib.loads(new)
    except tomllib.TOMLDecodeError:
        return []   # the validator refuses it, naming the problem
    return sorted(k for k in a.keys() | b.keys() if k not in TECHNICIAN_SECTIONS and a.get(k) != b.get(k))


def technician_check(old: str, new: str, submitted: str | None = None) -> None:
    """Refuse (Refused) a whole-file change that touches an admin section; devices must type moved secrets.

    `new` is the file as it would be saved (placeholders replaced by the stored secrets), `submitted`
    the text as sent, where a placeholder still shows that a stored secret would be used.
    """
    touched = admin_sections_changed(old, new)
    if touched:
        raise Refused("only an admin may change " + ", ".join(f"[{k}]" for k in touched)
                      + "; a technician changes devices, rules, machines and shifts")
    try:
        before = tomllib.loads(old).get("devices") or {}
        after = tomllib.loads(submitted if submitted is not None else new).get("devices") or {}
    except tomllib.TOMLDecodeError:
        return
    problems = [p for name, section in after.items() if isinstance(section, dict)
                for p in moved_secret_problems("devices", name, section, before.get(name))]
    if problems:
        from webui.configfile import ConfigRejected
        raise ConfigRejected(problems)


def _destination(section: dict[str, Any] | None) -> dict[str, Any]:
    return {k: section.get(k) for k in DESTINATION_KEYS} if isinstance(section, dict) else {}


def moved_secret_problems(kind: str, name: str, new: Any, saved: dict[str, Any] | None) -> list[str]:
    """Why `new` may not use a stored or referenced secret: its destination is not the saved one's.

    Nothing when the destination is unchanged. Otherwise every secret must be typed:
    a placeholder, or a secret named by `*_env` or `*_file`, is refused.
    """
    if not isinstance(new, dict) or (saved is not None and _destination(new) == _destination(saved)):
        return []
    why = ("the destination is not the saved one, so the secret must be typed here "
           "(a stored secret goes only where it was saved for)" if saved is not None else
           "this section is not saved, so the secret must be typed here "
           "(a stored secret goes only where it was saved for)")
    problems = []

    def walk(node: dict[str, Any], path: str) -> None:
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{path}.{k}")
            elif k in SECRET_KEYS and v == REDACTED:
                problems.append(f"{path}.{k}: {why}")
            elif k.endswith(("_env", "_file")) and k.rsplit("_", 1)[0] in SECRET_KEYS:
                problems.append(f"{path}.{k}: {why}")
    walk(new, f"{kind}.{name}")
    return problems
