"""The appliance settings the console writes for root to apply: NTP servers and SSH access.

On the flashed image (image/) the gateway runs unprivileged on a read-only root, so it
can neither restart systemd-timesyncd nor start an SSH server. It writes two files on
the data partition instead, named by `[webui] timesyncd_conf` and
`[webui] ssh_authorized_keys`; the image's root path unit (linebridge-system.path)
notices a change and applies it. This module owns those two files: their formats (a
systemd-timesyncd drop-in with `[Time] NTP=`, an OpenSSH authorized_keys file: SSH is
on while it holds at least one key, for root, keys only), their validation (every
problem names the server or the line) and their atomic writes. A setting whose path
is not configured is "not managed here": on a plain install the host's own tools do it.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from gateway.files import atomic_write
from webui.hoststate import kernel_clock

MAX_NTP_SERVERS = 8
MAX_SSH_KEYS = 32
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_TIME_HEADER = """\
# Linebridge: the NTP servers of this gateway (systemd-timesyncd drop-in), written by
# the web console. Event timestamps come from this clock. Empty NTP=: the servers a DHCP
# server announces, else FallbackNTP.
"""
_SSH_HEADER = """\
# Linebridge: the public keys that may log in as root over SSH, written by the web
# console. SSH is on while this file holds at least one key, and off when it holds none.
"""


class NotManaged(Exception):
    """This setting's file is not configured in `[webui]`: the host manages it."""


class SettingRejected(Exception):
    """The new setting does not validate; `problems` names each bad server or line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# -- NTP ----------------------------------------------------------------------------------

def valid_server(name: str) -> str | None:
    """Why `name` is not an NTP server name or address, or None when it is one."""
    if not name:
        return "is empty"
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        pass
    if len(name) > 253:
        return "is longer than 253 characters"
    labels = name.rstrip(".").split(".")
    if not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return "is neither a host name (letters, digits, '-' and '.') nor an IP address"
    return None


def read_time(path: Path | None) -> dict[str, Any]:
    """The configured NTP servers and the clock's state."""
    if path is None:
        return {"managed": False, "ntp": [], "fallback": [], "synchronized": _synchronized()}
    ntp: list[str] = []
    fallback: list[str] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Time]" and "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            if key.strip() == "NTP":
                ntp = value.split()
            elif key.strip() == "FallbackNTP":
                fallback = value.split()
    return {"managed": True, "ntp": ntp, "fallback": fallback, "synchronized": _synchronized()}


def _synchronized() -> bool | None:
    """The kernel's word, whichever daemon keeps the clock (None: it cannot be read here)."""
    return kernel_clock()["synchronized"]


def write_time(path: Path | None, servers: Any) -> dict[str, Any]:
    """Validate `servers` (a list of host names or addresses; empty: DHCP's or the fallback)
    and write them as the timesyncd drop-in, keeping its FallbackNTP line."""
    if path is None:
        raise NotManaged("NTP is not managed by this console: [webui] timesyncd_conf is not set "
                         "(the host's own systemd-timesyncd or chrony configuration applies)")
    if not isinstance(servers, list) or not all(isinstance(s, str) for s in servers):
        raise SettingRejected(["ntp: must be a list of host names or IP addresses"])
    servers = [s.strip() for s in servers if s.strip()]
    problems = [f"ntp server {s!r}: {why}" for s in servers if (why := valid_server(s))]
    if len(servers) > MAX_NTP_SERVERS:
        problems.append(f"ntp: at most {MAX_NTP_SERVERS} servers, got {len(servers)}")
    if len(set(servers)) != len(servers):
        problems.append("ntp: a server is listed twice")
    if problems:
        raise SettingRejected(problems)
    fallback = read_time(path)["fallback"]
    text = _TIME_HEADER + "[Time]\n" + f"NTP={' '.join(servers)}\n"
    if fallback:
        text += f"FallbackNTP={' '.join(fallback)}\n"
    atomic_write(path, text, 0o640)      # group-readable: systemd-timesync is in group linebridge
    return read_time(path)


# -- SSH ----------------------------------------------------------------------------------

def fingerprint(blob: bytes) -> str:
    """The key's fingerprint as `ssh-keygen -l` prints it: SHA256:<base64, unpadded>."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def parse_keys(text: str) -> tuple[list[dict[str, str]], list[str]]:
    """The keys of an authorized_keys text (one per line: type, base64, optional comment),
    and a problem for each line that is not one."""
    keys: list[dict[str, str]] = []
    problems: list[str] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 2:
            problems.append(f"line {n}: not a public key (expected: <type> <base64> [comment])")
            continue
        kind, b64 = parts[0], parts[1]
        comment = parts[2] if len(parts) > 2 else ""
        if not re.fullmatch(r"[a-z0-9@.-]+", kind):
            problems.append(f"line {n}: {kind[:40]!r} is not a key type (options before the key are not "
                            "supported here)")
            continue
        try:
            blob = base64.b64decode(b64, validate=True)
            load_ssh_public_key(f"{kind} {b64}".encode())
        except Exception as exc:  # binascii.Error, ValueError, UnsupportedAlgorithm
            problems.append(f"line {n}: not a valid {kind} public key ({exc})")
            continue
        keys.append({"type": kind, "key": b64, "comment": comment, "fingerprint": fingerprint(blob)})
    return keys, problems


def read_ssh(path: Path | None) -> dict[str, Any]:
    """Whether SSH is on, and the keys that may log in (type, comment, fingerprint)."""
    if path is None:
        return {"managed": False, "enabled": False, "keys": []}
    try:
        keys, _ = parse_keys(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        keys = []
    return {"managed": True, "enabled": bool(keys),
            "keys": [{"type": k["type"], "comment": k["comment"], "fingerprint": k["fingerprint"],
                      "line": _line(k)} for k in keys]}


def _line(key: dict[str, str]) -> str:
    return f"{key['type']} {key['key']}" + (f" {key['comment']}" if key["comment"] else "")


def write_ssh(path: Path | None, text: Any) -> dict[str, Any]:
    """Validate an authorized_keys text and write it: SSH is then on if it holds a key."""
    if path is None:
        raise NotManaged("SSH is not managed by this console: [webui] ssh_authorized_keys is not set "
                         "(the host's own SSH server configuration applies)")
    if not isinstance(text, str):
        raise SettingRejected(["authorized_keys: must be text, one public key per line"])
    keys, problems = parse_keys(text)
    if len(keys) > MAX_SSH_KEYS:
        problems.append(f"authorized_keys: at most {MAX_SSH_KEYS} keys, got {len(keys)}")
    if len({k["fingerprint"] for k in keys}) != len(keys):
        problems.append("authorized_keys: a key is listed twice")
    if problems:
        raise SettingRejected(problems)
    atomic_write(path, _SSH_HEADER + "".join(_line(k) + "\n" for k in keys), 0o640)
    return read_ssh(path)
