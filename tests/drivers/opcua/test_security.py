"""Secure channels and user login against an asyncua server that only offers
Basic256Sha256 SignAndEncrypt with user name login.

Trust: the server's certificate validator accepts exactly one client
certificate, the one in the `trusted/` pki folder when the session is created
(an explicit trust list, as an operator would configure on a real server). The
driver generates that certificate itself on its first connect.
"""
from __future__ import annotations

import asyncio
import logging
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from drivers.base import Backoff, Quality
from drivers.opcua import OpcUaDriver, browse
from drivers.opcua.pki import CERT_FILE, KEY_FILE, certificate_uris, load_certificate
from tests.drivers.opcua import (SERVER_URI, OpcUaTestServer, has, make_certificate,
                                 next_batch, node, parse)

TAGS = {"count": {"node": node("Counter")}, "recipe": {"node": node("Recipe")}}


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("opcua-pki")
    cert, key = make_certificate(folder / "server", "server", SERVER_URI)
    server = OpcUaTestServer(certificate=cert, private_key=key,
                             trusted_client=folder / "trusted" / CERT_FILE)
    server.start()
    try:
        yield server, folder
    finally:
        server.stop()


def secure_section(server, pki_dir, **extra):
    return {"type": "opcua", "endpoint": server.endpoint, "timeout": 3.0,
            "publishing_interval": 0.05, "security_policy": "Basic256Sha256",
            "security_mode": "SignAndEncrypt", "pki_dir": str(pki_dir),
            "application_uri": "urn:linebridge:test:gateway", "username": "operator",
            "password": "s3cret", "tags": TAGS} | extra


def first_batch(section, pki_root=None):
    async def scenario():
        driver = OpcUaDriver("press1", parse(section), backoff=Backoff(initial=0.05, cap=0.2))
        if pki_root is not None:
            driver.pki_root = pki_root
        batch = await next_batch(driver.samples(), lambda b: True)
        await driver.stop()
        return batch
    return asyncio.run(scenario())


def test_encrypted_session_with_generated_certificate_and_login(secure_server):
    server, folder = secure_server
    pki_dir = folder / "trusted"

    async def scenario():
        driver = OpcUaDriver("press1", parse(secure_section(server, pki_dir)))
        samples = driver.samples()
        seen = []
        await next_batch(samples, lambda b: {"count", "recipe"} <= {s.tag for x in seen for s in x
                                                                   if s.quality is Quality.GOOD},
                         seen=seen)
        await server.write("Counter", 43)
        await next_batch(samples, has("count", 43))
        await driver.stop()
        return {s.tag: s.value for batch in seen for s in batch}

    values = asyncio.run(scenario())
    assert values == {"count": 41, "recipe": "PN-100"}
    cert = load_certificate(pki_dir / CERT_FILE)
    assert certificate_uris(cert) == ["urn:linebridge:test:gateway"]  # the SubjectAltName URI
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and usage.data_encipherment
    assert stat.S_IMODE((pki_dir / KEY_FILE).stat().st_mode) == 0o600


def test_wrong_password_is_rejected_with_a_clear_error(secure_server, monkeypatch, caplog):
    server, folder = secure_server
    monkeypatch.setenv("PRESS1_OPCUA_PASSWORD", "not-the-password")
    section = secure_section(server, folder / "trusted", password_env="PRESS1_OPCUA_PASSWORD")
    del section["password"]
    with caplog.at_level(logging.INFO, logger="linebridge.drivers.opcua"):
        batch = first_batch(section)
    assert [s.quality for s in batch] == [Quality.BAD_CONFIG, Quality.BAD_CONFIG]
    assert all(s.value is None for s in batch)
    assert "login rejected for user 'operator' (BadUserAccessDenied)" in batch[0].error
    failed = [r for r in caplog.records if "event=connect_failed" in r.getMessage()]
    assert failed[0].levelno == logging.WARNING
    assert "not-the-password" not in caplog.text


def test_untrusted_client_certificate_is_rejected(secure_server):
    server, folder = secure_server
    refused_before = server.sessions_refused
    section = secure_section(server, None)
    del section["pki_dir"]  # generated under the driver's pki_root instead
    batch = first_batch(section, pki_root=folder / "elsewhere")
    assert all(s.quality is Quality.BAD_CONFIG for s in batch)
    error = batch[0].error
    assert "the server rejected the client certificate" in error
    made = folder / "elsewhere" / "press1" / CERT_FILE
    assert made.exists() and str(made) in error and "BadCertificateUntrusted" in error
    assert server.sessions_refused > refused_before


def test_server_certificate_other_than_the_pinned_one_is_refused(secure_server):
    server, folder = secure_server
    other, _ = make_certificate(folder / "other", "impostor", SERVER_URI)
    batch = first_batch(secure_section(server, folder / "trusted",
                                       server_certificate=str(other)))
    assert all(s.quality is Quality.BAD_CONFIG for s in batch)
    assert f"not the one in server_certificate {other}" in batch[0].error


def test_security_none_against_a_secure_only_server_names_what_it_offers(secure_server):
    server, folder = secure_server
    section = secure_section(server, folder / "trusted", security_policy="None",
                             security_mode="None")
    del section["pki_dir"]
    batch = first_batch(section)
    assert all(s.quality is Quality.BAD_CONFIG for s in batch)
    assert ("no endpoint with security_policy = None and security_mode = None; "
            "it offers: Basic256Sha256/SignAndEncrypt") in batch[0].error


def test_browse_over_a_secure_channel(secure_server):
    server, folder = secure_server
    config = parse(secure_section(server, folder / "trusted"))
    entries = asyncio.run(browse(config, "ns=2;s=Machine1"))
    assert {e["display_name"] for e in entries} >= {"Counter", "Recipe"}


def test_configured_pem_certificate_is_presented_whatever_its_file_name(secure_server, tmp_path):
    server, _ = secure_server
    der, key = make_certificate(tmp_path, "gateway", "urn:acme:gateway",
                                ExtendedKeyUsageOID.CLIENT_AUTH)
    pem = tmp_path / "gateway.crt"
    pem.write_bytes(load_certificate(der).public_bytes(serialization.Encoding.PEM))
    key.rename(tmp_path / "gateway.key")
    section = secure_section(server, None, certificate=str(pem),
                             private_key=str(tmp_path / "gateway.key"))
    del section["pki_dir"], section["application_uri"]  # the URI comes from the certificate
    batch = first_batch(section)
    # the channel was opened with it; this server trusts only its own list, and says so
    assert f"the server rejected the client certificate {pem}" in batch[0].error
    other, _ = make_certificate(tmp_path / "other", "other", "urn:acme:other")
    section["certificate"] = str(other)
    batch = first_batch(section)
    assert batch[0].quality is Quality.BAD_CONFIG
    assert f"private key {tmp_path / 'gateway.key'} does not belong to certificate" in batch[0].error
