"""The console's TLS certificate: made on the first start, kept in the state directory.

It owns `<state>/webui/tls.crt` and `tls.key` (0600): a self-signed ECDSA P-256
certificate for the host name, `localhost` and the loopback addresses, valid
for ten years (an appliance in a cabinet has no ACME). A person replacing both
files with a certificate from the plant's CA is honoured. The SHA-256
fingerprint is shown on the setup page, the identity page and the console, so a
technician can check the certificate the browser warns about.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import os
import re
import socket
from pathlib import Path

_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


def paths(state_dir: Path) -> tuple[Path, Path]:
    d = Path(state_dir) / "webui"
    return d / "tls.crt", d / "tls.key"


def ensure_certificate(state_dir: Path, gateway_id: str) -> tuple[Path, Path]:
    """The certificate and key files, made now if either is missing."""
    cert_path, key_path = paths(state_dir)
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    # cryptography's X.509 code (~2 MiB resident) only on the start that makes the certificate
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    cert_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname() or "linebridge"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Linebridge gateway"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, gateway_id[:64])])
    now = dt.datetime.now(dt.timezone.utc)
    alt = [x509.DNSName(host), x509.DNSName("localhost"),
           x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def fingerprint(cert_path: Path) -> str:
    """SHA-256 of the DER certificate, as colon-separated hex (what browsers show)."""
    # the first certificate of the file (the server's own, when a plant's CA chain follows it)
    m = _PEM_CERT.search(Path(cert_path).read_text(encoding="ascii", errors="replace"))
    try:
        der = base64.b64decode("".join(m.group(1).split()), validate=True) if m else b""
    except (binascii.Error, ValueError):
        der = b""
    if not der:
        raise ValueError(f"{cert_path} holds no PEM certificate")
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
