"""The client certificate the driver makes for itself, and when it makes a new one."""
from __future__ import annotations

import datetime as dt
import logging
import socket

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from drivers.opcua.pki import (CERT_FILE, KEY_FILE, certificate_uris, configured_identity,
                               ensure_client_identity, load_certificate, thumbprint)
from tests.drivers.opcua import make_certificate

URI = "urn:linebridge:gw1:press1"


def test_certificate_is_made_once_and_reused(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="linebridge.drivers.opcua"):
        made = ensure_client_identity(tmp_path / "pki", URI, "press1")
        again = ensure_client_identity(tmp_path / "pki", URI, "press1")
    assert made.generated and not again.generated
    assert again.certificate == tmp_path / "pki" / CERT_FILE
    assert again.private_key == tmp_path / "pki" / KEY_FILE
    cert = load_certificate(made.certificate)
    assert certificate_uris(cert) == [URI]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert socket.gethostname() in san.get_values_for_type(x509.DNSName)
    assert ExtendedKeyUsageOID.CLIENT_AUTH in cert.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    lines = [r.getMessage() for r in caplog.records if "event=certificate_created" in r.getMessage()]
    assert len(lines) == 1 and f"thumbprint={thumbprint(cert)}" in lines[0]


def test_certificate_is_made_anew_for_a_new_uri_or_before_it_expires(tmp_path, caplog):
    first = load_certificate(ensure_client_identity(tmp_path, URI, "press1").certificate)
    with caplog.at_level(logging.WARNING, logger="linebridge.drivers.opcua"):
        moved = ensure_client_identity(tmp_path, "urn:linebridge:gw2:press1", "press1")
    assert moved.generated
    assert certificate_uris(load_certificate(moved.certificate)) == ["urn:linebridge:gw2:press1"]
    assert "application URI changed" in caplog.text
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=5 * 365 - 10)
    renewed = ensure_client_identity(tmp_path, "urn:linebridge:gw2:press1", "press1", now=later)
    assert renewed.generated and "expires" in caplog.text
    assert thumbprint(load_certificate(renewed.certificate)) != thumbprint(first)


def test_a_damaged_certificate_is_replaced(tmp_path):
    ensure_client_identity(tmp_path, URI, "press1")
    (tmp_path / CERT_FILE).write_bytes(b"not a certificate")
    assert ensure_client_identity(tmp_path, URI, "press1").generated


def test_configured_certificate_names_the_application_uri(tmp_path):
    cert, key = make_certificate(tmp_path, "mine", "urn:acme:gateway",
                                 ExtendedKeyUsageOID.CLIENT_AUTH)
    identity = configured_identity(str(cert), str(key), None)
    assert identity.application_uri == "urn:acme:gateway" and not identity.generated
