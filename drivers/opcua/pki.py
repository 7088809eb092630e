"""The gateway's OPC-UA application instance certificate: made, kept and checked.

This module owns the client certificate and private key the driver presents on
a secure channel: when none is configured it generates a self-signed RSA-2048 /
SHA-256 certificate with the `cryptography` package, as OPC-UA Part 6 asks
(application URI and host name in SubjectAltName, key usages for signing and
encryption, clientAuth), and keeps it in the driver's `pki_dir` so the server
operator trusts it once. It also reads the application URI out of a configured
certificate and fingerprints certificates for log lines. Blocking file and RSA
work: call it through a thread. It does not open connections.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("linebridge.drivers.opcua")

CERT_FILE = "client_cert.der"
KEY_FILE = "client_key.pem"
VALID_DAYS = 5 * 365
RENEW_BEFORE_DAYS = 30


@dataclass(frozen=True)
class ClientIdentity:
    """The certificate and key files to present, and the application URI they name."""

    certificate: Path
    private_key: Path
    application_uri: str
    generated: bool = False
    certificate_format: str = "der"   # "der" | "pem", from the file's content
    key_format: str = "pem"


def default_application_uri(device: str) -> str:
    """`urn:linebridge:<host>:<device>`: unique per gateway and device."""
    return f"urn:linebridge:{socket.gethostname()}:{device}"


def file_format(path: str | Path) -> str:
    """`pem` or `der`, from the file's content rather than its name."""
    with open(path, "rb") as fh:
        return "pem" if fh.read(64).lstrip().startswith(b"-----BEGIN") else "der"


def load_private_key(path: str | Path) -> rsa.RSAPrivateKey:
    """An unencrypted RSA key from a PEM or DER file; raises ValueError with the reason."""
    data = Path(path).read_bytes()
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except TypeError:
        raise ValueError(f"{path} is encrypted; give an unencrypted private key") from None
    except ValueError as exc:
        raise ValueError(f"{path} is not a PEM or DER private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} is not an RSA key, which OPC-UA security policies need")
    return key


def load_certificate(path: str | Path) -> x509.Certificate:
    """A certificate from a DER or PEM file; raises ValueError with the reason."""
    data = Path(path).read_bytes()
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise ValueError(f"{path} is not a DER or PEM certificate: {exc}") from None


def certificate_uris(cert: x509.Certificate) -> list[str]:
    """The URIs in the certificate's SubjectAltName (an OPC-UA application URI among them)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def thumbprint(cert_or_der: x509.Certificate | bytes) -> str:
    """SHA-1 thumbprint in hex, the way OPC-UA tools show certificates."""
    der = (cert_or_der.public_bytes(serialization.Encoding.DER)
           if isinstance(cert_or_der, x509.Certificate) else cert_or_der)
    digest = hashes.Hash(hashes.SHA1())
    digest.update(der)
    return digest.finalize().hex()


def configured_identity(certificate: str, private_key: str,
                        application_uri: str | None) -> ClientIdentity:
    """The operator's own certificate; the application URI defaults to the one inside it."""
    cert = load_certificate(certificate)
    key = load_private_key(private_key)
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise ValueError(f"private key {private_key} does not belong to certificate {certificate}")
    uris = certificate_uris(cert)
    if application_uri is None:
        if not uris:
            raise ValueError(f"certificate {certificate} has no URI in its SubjectAltName; "
                             f"OPC-UA servers need the application URI there")
        application_uri = uris[0]
    elif application_uri not in uris:
        log.warning('event=certificate_uri_mismatch certificate=%s application_uri=%s '
                    'certificate_uris=%s error="servers usually reject a certificate that does '
                    'not name the application URI"', certificate, application_uri,
                    ",".join(uris) or "none")
    return ClientIdentity(Path(certificate), Path(private_key), application_uri,
                          certificate_format=file_format(certificate),
                          key_format=file_format(private_key))


def ensure_client_identity(pki_dir: str | Path, application_uri: str, device: str,
                           now: dt.datetime | None = None) -> ClientIdentity:
    """The certificate in `pki_dir`, generated when missing, expiring or for another URI."""
    folder = Path(pki_dir)
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    now = now or dt.datetime.now(dt.timezone.utc)
    reason = _why_renew(cert_path, key_path, application_uri, now)
    if reason is None:
        return ClientIdentity(cert_path, key_path, application_uri)
    folder.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _self_signed(key, application_uri, device, now)
    _write_private(key_path, key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.DER), mode=0o644)
    level = logging.INFO if reason == "missing" else logging.WARNING
    log.log(level, 'event=certificate_created device=%s path=%s application_uri=%s thumbprint=%s '
            'reason="%s" hint="the OPC-UA server must trust this certificate"',
            device, cert_path, application_uri, thumbprint(cert), reason)
    return ClientIdentity(cert_path, key_path, application_uri, generated=True)


def _why_renew(cert_path: Path, key_path: Path, application_uri: str,
               now: dt.datetime) -> str | None:
    if not cert_path.exists() or not key_path.exists():
        return "missing"
    try:
        cert = load_certificate(cert_path)
        key = load_private_key(key_path)
    except ValueError as exc:
        return f"unreadable: {exc}"
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        return "certificate and key do not match"
    if application_uri not in certificate_uris(cert):
        return f"application URI changed to {application_uri}"
    if cert.not_valid_after_utc - now < dt.timedelta(days=RENEW_BEFORE_DAYS):
        return f"expires {cert.not_valid_after_utc.date().isoformat()}"
    return None


def _self_signed(key: rsa.RSAPrivateKey, application_uri: str, device: str,
                 now: dt.datetime) -> x509.Certificate:
    host = socket.gethostname()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"linebridge {device}"[:64]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "linebridge"),
                      x509.NameAttribute(NameOID.DOMAIN_COMPONENT, host[:63] or "localhost")])
    public = key.public_key()
    names = [x509.UniformResourceIdentifier(application_uri), x509.DNSName(host or "localhost")]
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=10))  # tolerate a little clock skew
            .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                         key_encipherment=True, data_encipherment=True,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public),
                           critical=False)
            .sign(key, hashes.SHA256()))


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write atomically, with `mode` from the start (a key is never world-readable)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
