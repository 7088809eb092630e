"""Backup and restore of a gateway's console state: configuration, its history, users and, sealed with a
passphrase, the secrets and the device key.

It owns the archive format (`linebridge-backup`, version 1: a gzip'd tar) and its two directions. A
backup holds:

- `manifest.json`: format, version, gateway id, software version, when, by whom, and the SHA-256 of every
  other member (a restore refuses an archive whose members do not match it);
- `config.toml`: the configuration with every secret masked (the console's placeholder), so the archive
  shows no secret to whoever holds it;
- `history/NNNNNN.json` and `.toml`: the configuration history, each text masked the same way;
- `users.json`: the console's users with their password hashes (scrypt; never passwords);
- `sealed.bin`, only when a passphrase is given: the configuration and history texts unmasked and the
  device key, as JSON sealed with AES-256-GCM under a key derived from the passphrase by scrypt
  (n = 2^15, r = 8, p = 1, a random 16-byte salt); the manifest is its associated data, so a sealed part
  cannot be moved under another manifest.

A restore validates before it changes anything: members against the manifest, the configuration as the
gateway would load it (secrets from the sealed part, else kept from the gateway's own file at the same key
path, else refused naming the path), users (the restoring admin keeps an account), and the device key
only onto a gateway whose delivery journal is still empty (its seals are made with the key), taking effect
at the next restart. History is restored onto a gateway without history of its own, and kept otherwise.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from gateway.files import atomic_write
from gateway.signing import key_path
from webui.configfile import _mask, keep_secrets_in_text

FORMAT, VERSION = "linebridge-backup", 1
MAX_ARCHIVE = 2 * 2**20           # bytes, the console's request limit: configuration and history, not data
MAX_MEMBER = 8 * 2**20
MIN_PASSPHRASE = 12
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1


class BackupRejected(ValueError):
    """The archive or the passphrase cannot be used; `problems` names each reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _kek(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(passphrase.encode())


def _seal(plain: bytes, passphrase: str, aad: bytes) -> bytes:
    salt, nonce = os.urandom(16), os.urandom(12)
    return b"LBS1" + salt + nonce + AESGCM(_kek(passphrase, salt)).encrypt(nonce, plain, aad)


def _open(blob: bytes, passphrase: str, aad: bytes) -> bytes:
    if blob[:4] != b"LBS1" or len(blob) < 4 + 16 + 12 + 16:
        raise BackupRejected(["sealed.bin: not a sealed part of this format"])
    salt, nonce = blob[4:20], blob[20:32]
    try:
        return AESGCM(_kek(passphrase, salt)).decrypt(nonce, blob[32:], aad)
    except InvalidTag:
        raise BackupRejected(["passphrase: it does not open this backup's sealed part"]) from None


def make(*, config_text: str, history_dir: Path, users_path: Path, state_dir: Path, gateway: str,
         software: str, by: str, passphrase: str | None = None) -> bytes:
    """The archive's bytes; with `passphrase`, the secrets and the device key sealed inside."""
    if passphrase is not None and len(passphrase) < MIN_PASSPHRASE:
        raise BackupRejected([f"passphrase: at least {MIN_PASSPHRASE} characters"])
    members: dict[str, bytes] = {"config.toml": _mask(config_text).encode()}
    history: dict[str, str] = {}
    for path in sorted(history_dir.glob("*.json")):
        text_path = path.with_suffix(".toml")
        if not text_path.exists():
            continue
        members[f"history/{path.name}"] = path.read_bytes()
        text = text_path.read_text(encoding="utf-8")
        members[f"history/{text_path.name}"] = _mask(text).encode()
        history[text_path.name] = text
    members["users.json"] = users_path.read_bytes() if users_path.exists() else b'{"users": []}'
    manifest = {"format": FORMAT, "version": VERSION, "gateway": gateway, "software": software,
                "created": round(time.time(), 3), "by": by, "sealed": passphrase is not None,
                "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(members.items())}}
    head = json.dumps(manifest, sort_keys=True, indent=1).encode()
    if passphrase is not None:
        key = key_path(state_dir)
        secret = {"config": config_text, "history": history,
                  "device_key": base64.b64encode(key.read_bytes()).decode() if key.exists() else None}
        members["sealed.bin"] = _seal(json.dumps(secret).encode(), passphrase, head)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in [("manifest.json", head), *members.items()]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(manifest["created"]), 0o600
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Contents:
    """An archive read and checked: what a restore may apply."""

    manifest: dict[str, Any]
    config_text: str                       # unmasked when sealed and opened, else masked
    history: dict[str, tuple[bytes, str]]  # NNNNNN -> (entry json, text)
    users: dict[str, Any]
    device_key: bytes | None = None
    notes: list[str] = field(default_factory=list)


def read(data: bytes, passphrase: str | None = None) -> Contents:
    """Open and check an archive; raises `BackupRejected` naming every problem."""
    if len(data) > MAX_ARCHIVE:
        raise BackupRejected([f"archive: larger than {MAX_ARCHIVE // 2**20} MiB"])
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for info in tar:
                name = info.name
                if not info.isfile() or name.startswith(("/", "..")) or "/../" in name or name.count("/") > 1:
                    raise BackupRejected([f"archive: member {name[:80]!r} is not a plain file of a backup"])
                if info.size > MAX_MEMBER or len(members) > 10_000:
                    raise BackupRejected([f"archive: member {name[:80]!r} is too large"])
                f = tar.extractfile(info)
                members[name] = f.read() if f else b""
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackupRejected([f"archive: not a gzip'd tar ({type(exc).__name__})"]) from None
    try:
        head = members.pop("manifest.json")
        manifest = json.loads(head)
    except (KeyError, ValueError):
        raise BackupRejected(["archive: no readable manifest.json"]) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise BackupRejected([f"manifest.json: not a {FORMAT} version {VERSION}"])
    files = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    sealed = members.pop("sealed.bin", None)
    problems = [f"{name}: missing" for name in files if name not in members]
    problems += [f"{name}: not listed in the manifest" for name in members if name not in files]
    problems += [f"{name}: its SHA-256 does not match the manifest" for name, data in members.items()
                 if name in files and hashlib.sha256(data).hexdigest() != files[name]]
    if "config.toml" not in files:
        problems.append("config.toml: missing")
    if problems:
        raise BackupRejected(problems)
    try:
        users = json.loads(members["users.json"])
        assert isinstance(users, dict) and isinstance(users.get("users"), list)
    except (KeyError, ValueError, AssertionError):
        raise BackupRejected(["users.json: not a users file"]) from None
    history: dict[str, tuple[bytes, str]] = {}
    for name in members:
        if name.startswith("history/") and name.endswith(".json"):
            stem = name[len("history/"):-len(".json")]
            if not stem.isdigit() or f"history/{stem}.toml" not in members:
                raise BackupRejected([f"{name}: not a history entry"])
            history[stem] = (members[name], members[f"history/{stem}.toml"].decode("utf-8", "replace"))
    out = Contents(manifest, members["config.toml"].decode("utf-8", "replace"), history, users)
    if sealed is not None and passphrase:
        secret = json.loads(_open(sealed, passphrase, head))
        out.config_text = secret["config"]
        out.history = {stem: (entry, secret["history"].get(f"{stem}.toml", text))
                       for stem, (entry, text) in history.items()}
        out.device_key = base64.b64decode(secret["device_key"]) if secret.get("device_key") else None
    elif sealed is not None:
        out.notes.append("the sealed part (secrets, device key) was not opened: no passphrase given; "
                         "secrets are kept from this gateway's own configuration")
    elif passphrase:
        out.notes.append("this backup has no sealed part: it was made without a passphrase")
    return out


def restore_history(contents: Contents, history_dir: Path) -> int:
    """Put the backup's history in place on a gateway with none of its own (at most the 'as found'
    entry); the number of entries written."""
    own = sorted(history_dir.glob("*.json"))
    if len(own) > 1 or not contents.history:
        return 0
    for p in history_dir.glob("*"):
        p.unlink()
    for stem, (entry, text) in sorted(contents.history.items()):
        atomic_write(history_dir / f"{stem}.json", entry)
        atomic_write(history_dir / f"{stem}.toml", text)
    return len(contents.history)


def restore_key(contents: Contents, state_dir: Path, journal_entries: int) -> bool:
    """Write the backup's device key; only while the delivery journal is empty (its seals use the key)."""
    if contents.device_key is None:
        return False
    path = key_path(state_dir)
    if path.exists() and path.read_bytes() == contents.device_key:
        return False
    if journal_entries:
        raise BackupRejected([f"device key: this gateway has delivered ({journal_entries} journal entries sealed "
                              "with its own key); restore the key only onto a fresh gateway"])
    atomic_write(path, contents.device_key, 0o600)
    return True


def masked(text: str) -> str:
    """A configuration text with every secret masked (what an export or a backup shows)."""
    return _mask(text)


def config_for(contents: Contents, current: str) -> str:
    """The configuration text to save: the backup's, secrets still masked kept from `current`."""
    return keep_secrets_in_text(contents.config_text, current)
