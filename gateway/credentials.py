"""Where a sink's secret lives, how it is replaced, and how a running sink notices the new one.

It owns three things for credential rotation without downtime: finding the
source of a secret (`sinks.<name>.api_key`, `password`) over the
configuration's layers (inline in one of the TOML files, a file named by
`<secret>_file`, or an environment variable named by `<secret>_env`);
replacing it durably (`store`: the new file is written beside the old,
fsynced and renamed over it, see `gateway.files.atomic_write`; an inline
secret is changed in its TOML file with comments and layout kept); and
`SecretWatch`, which a running sink polls (a few `stat` calls) so a secret
changed by `linebridge odoo rotate-key`, the console or a secret manager is in
use from the next call on, without a restart. A secret is only ever shown by
its `fingerprint`, never by value: an HMAC-SHA256 prefix under a key derived
from the device key (`DeviceKey.fingerprint_key`), not a plain hash, because
a plain hash of a weak MQTT password (or an Odoo password used as a key) in a
log or a page could be reversed with a dictionary. The running gateway and
the commands given its `--state-dir` share the key, so their fingerprints
agree; a process without the device key uses a random key of its own.
It does not own checking the new secret against its peer (`gateway.sinks.odoo.check.check_key`)
nor the sinks' swap itself.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gateway.errors import LinebridgeError
from gateway.files import atomic_write

log = logging.getLogger("linebridge.credentials")


class CredentialError(LinebridgeError):
    """The secret cannot be found, read or replaced where it is kept (the message never holds it)."""


_fingerprint_key = os.urandom(32)


def use_fingerprint_key(key: bytes) -> None:
    """Fingerprint under `key` from now on (the device key's, so every process of this gateway agrees)."""
    global _fingerprint_key
    _fingerprint_key = key


def fingerprint(secret: str) -> str:
    """What identifies a secret in logs and pages: `hmac:` and 16 hex digits of its keyed HMAC-SHA256."""
    return "hmac:" + hmac.new(_fingerprint_key, secret.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class Source:
    """Where `sinks.<sink>.<name>` comes from."""

    kind: str            # inline | file | env
    layer: Path          # the configuration file that sets it (the last layer that does)
    sink: str
    name: str            # api_key | password
    target: str | None = None   # the secret file (file) or the variable's name (env)

    @property
    def key_path(self) -> str:
        suffix = {"inline": "", "file": "_file", "env": "_env"}[self.kind]
        return f"sinks.{self.sink}.{self.name}{suffix}"

    def describe(self) -> str:
        if self.kind == "inline":
            return f"{self.layer} ({self.key_path})"
        if self.kind == "file":
            return f"{self.target} (named by {self.key_path} in {self.layer})"
        return f"environment variable {self.target} (named by {self.key_path} in {self.layer})"

    def read(self) -> str:
        """The secret as the gateway would load it now."""
        try:
            if self.kind == "inline":
                value = _section(tomllib.loads(self.layer.read_text(encoding="utf-8")), self.sink).get(self.name)
            elif self.kind == "file":
                value = Path(str(self.target)).read_text(encoding="utf-8").strip()
            else:
                value = os.environ.get(str(self.target))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CredentialError(f"cannot read {self.describe()}: "
                                  f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
        if not isinstance(value, str) or not value:
            raise CredentialError(f"{self.describe()} holds no {self.name}")
        return value

    def files(self) -> list[Path]:
        """The files whose change may change the secret."""
        return [self.layer] + ([Path(str(self.target))] if self.kind == "file" else [])


def _section(raw: dict[str, Any], sink: str) -> dict[str, Any]:
    sinks = raw.get("sinks")
    section = sinks.get(sink) if isinstance(sinks, dict) else None
    return section if isinstance(section, dict) else {}


def locate(layers: list[Path], sink: str, name: str = "api_key") -> Source:
    """The source of `sinks.<sink>.<name>`: the last layer that sets any of its three spellings wins."""
    found: Source | None = None
    for layer in layers:
        try:
            raw = tomllib.loads(Path(layer).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CredentialError(f"cannot read {layer}: "
                                  f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
        section = _section(raw, sink)
        for kind, key in (("inline", name), ("file", f"{name}_file"), ("env", f"{name}_env")):
            if key in section:
                found = Source(kind, Path(layer), sink, name,
                               None if kind == "inline" else str(section[key]))
    if found is None:
        raise CredentialError(f"no {name}, {name}_file or {name}_env under [sinks.{sink}] in "
                              f"{', '.join(str(p) for p in layers)}")
    return found


def store(source: Source, new: str) -> None:
    """Replace the secret durably where it lives; an environment variable cannot be (CredentialError)."""
    if not new or new != new.strip() or "\n" in new:
        raise CredentialError(f"the new {source.name} is empty or has surrounding whitespace or a line break")
    if source.kind == "env":
        raise CredentialError(f"the {source.name} comes from the {source.describe()}: set the new one there and "
                              f"restart the gateway, or name a file with {source.name}_file to rotate without one")
    if source.kind == "file":
        path = Path(str(source.target))
        mode = _mode(path)
        atomic_write(path, new + "\n", mode)
        return
    import tomlkit
    text = source.layer.read_text(encoding="utf-8")
    doc = tomlkit.parse(text)
    section: Any = doc.get("sinks", {}).get(source.sink) if isinstance(doc.get("sinks"), dict) else None
    if section is None or source.name not in section:
        raise CredentialError(f"{source.describe()}: the key is no longer there")
    section[source.name] = new
    atomic_write(source.layer, tomlkit.dumps(doc), _mode(source.layer))


def _mode(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return 0o600


class SecretWatch:
    """Polled by a running sink: the secret's new value once its source changed, else None.

    A poll costs a few `stat` calls and is done at most every `interval` seconds
    unless forced (after the peer refused the current secret). A file caught
    half-edited or missing keeps the current secret and is looked at again.
    """

    def __init__(self, layers: list[Path], sink: str, name: str, current: str, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.layers = [Path(p) for p in layers]
        self.sink = sink
        self.name = name
        self.current = current
        self.interval = interval
        self.clock = clock
        self._next = 0.0
        self._seen: tuple[Any, ...] | None = None
        self._source: Source | None = None
        self.last_error: str | None = None
        self._stamp()

    def _files(self) -> list[Path]:
        extra = self._source.files()[1:] if self._source is not None else []
        return [*self.layers, *extra]

    def _stamp(self) -> bool:
        """Remember the files' stat signatures; True when they differ from the last ones."""
        sig = []
        for p in self._files():
            try:
                st = os.stat(p)
                sig.append((str(p), st.st_ino, st.st_mtime_ns, st.st_size))
            except OSError:
                sig.append((str(p), None))
        sig_t = tuple(sig)
        changed = sig_t != self._seen
        self._seen = sig_t
        if self._source is None:
            try:
                self._source = locate(self.layers, self.sink, self.name)
            except CredentialError as exc:
                self.last_error = str(exc)
        return changed

    def poll(self, force: bool = False) -> str | None:
        now = self.clock()
        if not force and now < self._next:
            return None
        self._next = now + self.interval
        if not self._stamp() and not force:
            return None
        try:
            self._source = locate(self.layers, self.sink, self.name)
            self._stamp()                  # the secret file may have been named anew
            value = self._source.read()
        except CredentialError as exc:
            if exc.args[0] != self.last_error:
                log.warning("event=credential_unreadable sink=%s error=%r", self.sink, str(exc))
            self.last_error = str(exc)
            self._seen = None              # look again at the next poll
            return None
        self.last_error = None
        if value == self.current:
            return None
        old, self.current = self.current, value
        log.info("event=credential_changed sink=%s %s=%s old=%s source=%s", self.sink, self.name,
                 fingerprint(value), fingerprint(old), self._source.kind)
        return value


#: a client certificate that expires within this many days is reported as expiring
EXPIRY_WARN_DAYS = 30
_cert_cache: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}


def certificate_expiry(path: str | Path, now: float | None = None) -> dict[str, Any]:
    """`not_after` (ISO UTC), `days_left` and `expiring` (within EXPIRY_WARN_DAYS, or expired) of the
    first PEM certificate in `path`; `error` when it cannot be read. Parsed once per file version."""
    from datetime import timezone
    now = time.time() if now is None else now
    key = str(path)
    try:
        st = os.stat(path)
        stamp = (st.st_mtime_ns, st.st_size)
        cached = _cert_cache.get(key)
        if cached is not None and cached[0] == stamp:
            not_after = cached[1]["epoch"]
        else:
            from cryptography import x509
            cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
            not_after = cert.not_valid_after_utc.astimezone(timezone.utc).timestamp()
            if len(_cert_cache) > 64:
                _cert_cache.clear()
            _cert_cache[key] = (stamp, {"epoch": not_after})
    except (OSError, ValueError) as exc:
        return {"error": f"cannot read the certificate: {getattr(exc, 'strerror', None) or type(exc).__name__}",
                "expiring": True}
    days = (not_after - now) / 86400.0
    from gateway.events import iso_utc
    return {"not_after": iso_utc(not_after), "days_left": int(days // 1),
            "expiring": days <= EXPIRY_WARN_DAYS}


def certificates(sinks: dict[str, Any], now: float | None = None) -> dict[str, dict[str, Any]]:
    """Per sink with a client certificate (`certfile`): its expiry; a warning is logged once a day."""
    out: dict[str, dict[str, Any]] = {}
    for name, cfg in sinks.items():
        certfile = getattr(cfg, "certfile", None)
        if certfile:
            out[name] = certificate_expiry(certfile, now) | {"certfile": str(certfile)}
            if out[name]["expiring"]:
                _warn_daily(name, out[name])
    return out


_warned: dict[str, float] = {}


def _warn_daily(sink: str, info: dict[str, Any]) -> None:
    now = time.monotonic()
    if now - _warned.get(sink, -1e18) < 86400:
        return
    _warned[sink] = now
    log.warning("event=certificate_expiring sink=%s certfile=%s not_after=%s days_left=%s error=%r", sink,
                info.get("certfile"), info.get("not_after"), info.get("days_left"), info.get("error"))
