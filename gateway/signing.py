"""The gateway's device identity and event signatures (Ed25519 over a canonical JSON form).

It owns the device key (made once, on the first start, as `<state>/keys/device.key`:
PEM PKCS8, mode 0600), the key id (`kid`: the first 16 hex digits of SHA-256 over
the raw 32-byte public key), the canonical form that is signed, and verification.
It does not own where signing happens (the intake pipeline, before the durable
append) nor the wire (the sinks send the stored envelope as it is).

The canonical form of an envelope is its JSON object without `sig` and `seq`
(`seq` is given by the store after signing), serialised with sorted keys, no
insignificant whitespace, `ensure_ascii=False`, in UTF-8. A verifier parses the
envelope, drops those two keys and serialises the rest the same way.

The journal's HMAC key is derived from the device key (`DeviceKey.journal_key`);
the journal itself is `store.journal`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.errors import LinebridgeError
from gateway.files import atomic_write

ALG = "Ed25519"
UNSIGNED_FIELDS = frozenset({"sig", "seq"})
KEY_FILE = Path("keys") / "device.key"
# The DER of an Ed25519 private key in PKCS8 (RFC 8410, section 7) is this prefix and the 32-byte seed:
# the device key is read and written in that form directly. cryptography's `serialization` module
# would do the same, but importing it loads its SSH, RSA, DSA and EC code too (~1 MiB and ~60 modules in
# every gateway); it is imported only for a key file in any other form, to read it or say what is wrong.
_PKCS8_ED25519 = bytes.fromhex("302e020100300506032b657004220420")
_PEM_PRIVATE = ("-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----")


class KeyFileError(LinebridgeError):
    """The device key or a public key given to verify cannot be used."""


def canonical(envelope: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: every field but `sig` and `seq`, canonical JSON, UTF-8."""
    body = {k: v for k, v in envelope.items() if k not in UNSIGNED_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def key_path(state_dir: Path | str) -> Path:
    return Path(state_dir) / KEY_FILE


@dataclass(frozen=True)
class PublicKey:
    """A public key to verify with: the raw 32 bytes and its key id."""

    raw: bytes

    @property
    def kid(self) -> str:
        return key_id(self.raw)

    @property
    def b64(self) -> str:
        return base64.b64encode(self.raw).decode("ascii")

    @classmethod
    def parse(cls, text: str) -> "PublicKey":
        """From base64 of the raw 32 bytes (what `keys show` prints), or a PEM public key."""
        text = text.strip()
        if text.startswith("-----BEGIN"):
            from cryptography.hazmat.primitives import serialization  # rare: `verify --key key.pem`
            try:
                key = serialization.load_pem_public_key(text.encode("ascii"))
            except ValueError as exc:
                raise KeyFileError(f"not a PEM public key: {exc}") from exc
            if not isinstance(key, Ed25519PublicKey):
                raise KeyFileError("the PEM public key is not an Ed25519 key")
            return cls(key.public_bytes_raw())
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KeyFileError(f"not base64: {exc}") from exc
        if len(raw) != 32:
            raise KeyFileError(f"an Ed25519 public key is 32 bytes, this one is {len(raw)}")
        return cls(raw)


def pkcs8_pem(seed: bytes) -> bytes:
    """An Ed25519 private key's PEM PKCS8, byte for byte what cryptography writes for it."""
    b64 = base64.b64encode(_PKCS8_ED25519 + seed).decode("ascii")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "\n".join([_PEM_PRIVATE[0], *lines, _PEM_PRIVATE[1], ""]).encode("ascii")


def _seed_of(pem: bytes) -> bytes | None:
    """The 32-byte seed of an unencrypted Ed25519 PEM PKCS8 key; None for any other content."""
    lines = pem.decode("ascii", "replace").strip().splitlines()
    if len(lines) < 3 or lines[0].strip() != _PEM_PRIVATE[0] or lines[-1].strip() != _PEM_PRIVATE[1]:
        return None
    try:
        der = base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(der) != len(_PKCS8_ED25519) + 32 or not der.startswith(_PKCS8_ED25519):
        return None
    return der[len(_PKCS8_ED25519):]


class DeviceKey:
    """The gateway's Ed25519 private key and what it signs."""

    def __init__(self, private: Ed25519PrivateKey, path: Path | None = None) -> None:
        self._private = private
        self.path = path
        self.public = PublicKey(private.public_key().public_bytes_raw())
        self.kid = self.public.kid

    @classmethod
    def load(cls, state_dir: Path | str) -> "DeviceKey | None":
        """The key under `state_dir`, or None when none has been made yet."""
        path = key_path(state_dir)
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyFileError(f"cannot read the device key {path}: {exc.strerror or exc}") from exc
        seed = _seed_of(pem)
        if seed is not None:
            return cls(Ed25519PrivateKey.from_private_bytes(seed), path)
        from cryptography.hazmat.primitives import serialization  # another form: cryptography reads or judges it
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"{path} is not a PEM PKCS8 private key: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{path} is not an Ed25519 key")
        return cls(key, path)

    @classmethod
    def load_or_create(cls, state_dir: Path | str) -> "DeviceKey":
        """The key under `state_dir`; made (0600, in a 0700 directory) when there is none."""
        existing = cls.load(state_dir)
        if existing is not None:
            return existing
        path = key_path(state_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        private = Ed25519PrivateKey.generate()
        atomic_write(path, pkcs8_pem(private.private_bytes_raw()))  # a crash leaves no half-written key
        return cls(private, path)

    def journal_key(self) -> bytes:
        """The 32-byte HMAC key of the delivery journal, derived from the device key (HKDF-SHA256).

        Derived rather than stored: it exists wherever the device key does and
        nowhere else, needs no file of its own and no migration.
        """
        raw = self._private.private_bytes_raw()
        return HKDF(hashes.SHA256(), 32, salt=None, info=b"linebridge journal hmac v1").derive(raw)

    def fingerprint_key(self) -> bytes:
        """The 32-byte key of the secrets' fingerprints in logs and pages (`gateway.credentials`), HKDF-SHA256."""
        return HKDF(hashes.SHA256(), 32, salt=None, info=b"linebridge secret fingerprint v1").derive(
            self._private.private_bytes_raw())

    def sign(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """Set `envelope["sig"]` over its canonical form; returns the same dict."""
        value = self._private.sign(canonical(envelope))
        envelope["sig"] = {"alg": ALG, "kid": self.kid, "value": base64.b64encode(value).decode("ascii")}
        return envelope


def verify(envelope: Any, key: PublicKey) -> str | None:
    """None if `envelope` carries a valid signature by `key`, else the reason in words."""
    if not isinstance(envelope, dict):
        return "not a JSON object"
    sig = envelope.get("sig")
    if not isinstance(sig, dict):
        return "no sig field"
    if sig.get("alg") != ALG:
        return f"unsupported algorithm {sig.get('alg')!r} (expected {ALG})"
    if sig.get("kid") != key.kid:
        return f"signed by key id {sig.get('kid')!r}, not by the given key ({key.kid})"
    try:
        value = base64.b64decode(str(sig.get("value", "")), validate=True)
    except (binascii.Error, ValueError):
        return "sig.value is not base64"
    try:
        body = canonical(envelope)
    except (TypeError, ValueError) as exc:
        return f"cannot form the canonical JSON: {exc}"
    try:
        Ed25519PublicKey.from_public_bytes(key.raw).verify(value, body)
    except InvalidSignature:
        return "signature does not match the content (altered or signed by another key)"
    return None
