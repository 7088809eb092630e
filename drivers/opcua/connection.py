"""Opening one OPC-UA client session with the configured security and login.

This module owns building an asyncua `Client` for a device (application
identity, secure channel policy and mode, server certificate check, user name
login, per-request timeout, keepalive), connecting it, and turning whatever
went wrong into a `ConnectFailure` that carries the quality to report and one
clear sentence for the operator. It does not subscribe, poll or reconnect.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from asyncua import Client, ua
from asyncua.crypto import security_policies, uacrypto

from drivers.base import Quality
from drivers.opcua import pki
from drivers.opcua.config import OpcUaDeviceConfig
from drivers.opcua.quality import CONFIG_CODES, quality_for_status, status_name, status_text

log = logging.getLogger("linebridge.drivers.opcua")

#: sessions the server may keep for us while we are away; we never resume them
SESSION_TIMEOUT_MS = 60_000

_POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128Sha256RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256Sha256RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
_MODES = {"None": ua.MessageSecurityMode.None_, "Sign": ua.MessageSecurityMode.Sign,
          "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt}
_S = ua.StatusCodes
_LOGIN_CODES = frozenset({_S.BadUserAccessDenied, _S.BadIdentityTokenInvalid,
                          _S.BadIdentityTokenRejected})
_CERT_CODES = frozenset({_S.BadCertificateUntrusted, _S.BadCertificateInvalid,
                         _S.BadCertificateUriInvalid, _S.BadCertificateTimeInvalid,
                         _S.BadCertificateUseNotAllowed, _S.BadCertificateRevoked,
                         _S.BadSecurityChecksFailed})


class ConnectFailure(Exception):
    """Connecting failed; `quality` is what the tags get, `reason` says why in plain words."""

    def __init__(self, quality: Quality, reason: str) -> None:
        super().__init__(reason)
        self.quality, self.reason = quality, reason


@dataclass(frozen=True)
class Identity:
    """Who the gateway is on this connection (certificate files, application URI)."""

    application_uri: str
    certificate: Path | None = None
    private_key: Path | None = None
    certificate_format: str = "der"
    key_format: str = "pem"


async def prepare_identity(cfg: OpcUaDeviceConfig, device: str,
                           pki_root: str | Path = "pki") -> Identity:
    """The configured or generated client certificate (generated only when security is on).

    A generated one lives in `pki_dir`, or else in `<pki_root>/<device>`.
    """
    if not cfg.secure:
        return Identity(cfg.application_uri or pki.default_application_uri(device))
    try:
        if cfg.certificate and cfg.private_key:
            ident = await asyncio.to_thread(pki.configured_identity, cfg.certificate,
                                            cfg.private_key, cfg.application_uri)
        else:
            uri = cfg.application_uri or pki.default_application_uri(device)
            folder = cfg.pki_dir or str(Path(pki_root) / device)
            ident = await asyncio.to_thread(pki.ensure_client_identity, folder, uri, device)
    except (OSError, ValueError) as exc:
        raise ConnectFailure(Quality.BAD_CONFIG, f"client certificate: {exc}") from None
    return Identity(ident.application_uri, ident.certificate, ident.private_key,
                    ident.certificate_format, ident.key_format)


def new_client(cfg: OpcUaDeviceConfig, device: str, identity: Identity) -> Client:
    """An unconnected client with the gateway's identity and the device's timeouts."""
    client = Client(cfg.endpoint, timeout=cfg.timeout, watchdog_intervall=cfg.keepalive_interval)
    client.name = f"linebridge {device}"
    client.description = client.name
    client.application_uri = identity.application_uri
    client.product_uri = "urn:linebridge"
    client.session_timeout = SESSION_TIMEOUT_MS
    return client


async def open_client(cfg: OpcUaDeviceConfig, device: str, identity: Identity,
                      on_lost: Callable[[Exception], Awaitable[None]] | None = None) -> Client:
    """A connected, activated client; raises `ConnectFailure` (never leaves a socket open)."""
    client = new_client(cfg, device, identity)
    try:
        if cfg.secure:
            await _secure(client, cfg, identity)
        if cfg.username is not None:
            password = cfg.resolve_password()
            if password is None:
                raise ConnectFailure(Quality.BAD_CONFIG,
                                     f"environment variable {cfg.password_env} (password_env) "
                                     f"is not set")
            client.set_user(cfg.username)
            client.set_password(password)
        client.connection_lost_callback = on_lost
        try:
            await client.connect()
        except ua.UaError as exc:
            if not str(exc).startswith("No matching endpoints"):
                raise
            endpoints = await client.connect_and_get_server_endpoints()
            raise ConnectFailure(Quality.BAD_CONFIG,
                                 f"the server has no endpoint with security_policy = "
                                 f"{cfg.security_policy} and security_mode = "
                                 f"{cfg.security_mode}; it offers: {offered(endpoints)}") from None
    except BaseException as exc:
        await discard(client)
        if isinstance(exc, ConnectFailure) or not isinstance(exc, Exception):
            raise
        raise classify(exc, cfg, identity) from None
    return client


async def _secure(client: Client, cfg: OpcUaDeviceConfig, identity: Identity) -> None:
    policy = _POLICIES[cfg.security_policy]
    mode = _MODES[cfg.security_mode]
    endpoints = await client.connect_and_get_server_endpoints()
    chosen = next((ep for ep in endpoints if ep.SecurityPolicyUri == policy.URI
                   and ep.SecurityMode == mode), None)
    if chosen is None:
        raise ConnectFailure(Quality.BAD_CONFIG,
                             f"the server has no endpoint with security_policy = "
                             f"{cfg.security_policy} and security_mode = {cfg.security_mode}; "
                             f"it offers: {offered(endpoints)}")
    server_der = _first_certificate(chosen.ServerCertificate or b"")
    if not server_der:
        raise ConnectFailure(Quality.BAD_CONFIG, "the server endpoint carries no certificate")
    if cfg.server_certificate:
        try:
            pinned = await asyncio.to_thread(pki.load_certificate, cfg.server_certificate)
        except (OSError, ValueError) as exc:
            raise ConnectFailure(Quality.BAD_CONFIG, f"server_certificate: {exc}") from None
        if pki.thumbprint(pinned) != pki.thumbprint(server_der):
            raise ConnectFailure(Quality.BAD_CONFIG,
                                 f"the server presents certificate {pki.thumbprint(server_der)}, "
                                 f"not the one in server_certificate {cfg.server_certificate} "
                                 f"({pki.thumbprint(pinned)})")
    assert identity.certificate is not None and identity.private_key is not None
    await client.set_security(
        policy, uacrypto.CertProperties(str(identity.certificate), identity.certificate_format),
        uacrypto.CertProperties(str(identity.private_key), identity.key_format),
        server_certificate=server_der, mode=mode)


def offered(endpoints: list[ua.EndpointDescription]) -> str:
    """`None/None, Basic256Sha256/SignAndEncrypt` for the endpoints a server lists."""
    names = []
    for ep in endpoints:
        policy = ep.SecurityPolicyUri.rsplit("#", 1)[-1]
        mode = ep.SecurityMode.name.rstrip("_")
        if f"{policy}/{mode}" not in names:
            names.append(f"{policy}/{mode}")
    return ", ".join(names) or "no endpoints"


def _first_certificate(der: bytes) -> bytes:
    """The leading certificate of a DER blob that may hold a whole chain."""
    if len(der) < 4:
        return der
    length = int.from_bytes(der[2:4], "big") + 4 if der[1] == 0x82 else len(der)
    return der[:length]


def classify(exc: BaseException, cfg: OpcUaDeviceConfig,
             identity: Identity | None = None) -> ConnectFailure:
    """The quality and the operator's sentence for an error raised while talking to a server."""
    if isinstance(exc, ConnectFailure):
        return exc
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return ConnectFailure(Quality.BAD_TIMEOUT, f"no response within {cfg.timeout:g} s")
    if isinstance(exc, ua.UaStatusCodeError):
        return _classify_status(exc.code, cfg, identity)
    if isinstance(exc, ConnectionRefusedError):
        return ConnectFailure(Quality.BAD_COMM, "connection refused")
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc) or type(exc).__name__
        return ConnectFailure(Quality.BAD_COMM, f"connection failed: {text}")
    if isinstance(exc, ua.UaError):
        text = str(exc)
        if text.startswith("No matching endpoints"):
            return ConnectFailure(Quality.BAD_CONFIG,
                                  f"the server has no endpoint with security_policy = "
                                  f"{cfg.security_policy} and security_mode = "
                                  f"{cfg.security_mode}")
        if "certificate mismatch" in text.lower():
            return ConnectFailure(Quality.BAD_CONFIG,
                                  "the server's certificate changed during the connection")
        return ConnectFailure(Quality.BAD_COMM, f"OPC-UA error: {text}")
    return ConnectFailure(Quality.BAD_COMM, f"{type(exc).__name__}: {exc}")


def _classify_status(code: int, cfg: OpcUaDeviceConfig,
                     identity: Identity | None) -> ConnectFailure:
    base = code & 0xFFFF0000
    text = status_text(code)
    if base in _LOGIN_CODES:
        if cfg.username is None:
            return ConnectFailure(Quality.BAD_CONFIG,
                                  f"the server does not accept anonymous login "
                                  f"({status_name(code)}); set username and password")
        return ConnectFailure(Quality.BAD_CONFIG,
                              f"login rejected for user {cfg.username!r} ({status_name(code)}): "
                              f"check username and password")
    if base in _CERT_CODES:
        where = f" {identity.certificate}" if identity and identity.certificate else ""
        return ConnectFailure(Quality.BAD_CONFIG,
                              f"the server rejected the client certificate{where} ({text}); "
                              f"trust it on the server")
    if base in CONFIG_CODES:
        return ConnectFailure(Quality.BAD_CONFIG, f"the server refused the session: {text}")
    return ConnectFailure(quality_for_status(code), f"the server answered {text}")


async def discard(client: Client, graceful: bool = False, timeout: float = 1.0) -> None:
    """Close a client; gracefully (CloseSession) only when asked and the link is up."""
    try:
        if graceful:
            await asyncio.wait_for(client.disconnect(), timeout)
            return
        await asyncio.wait_for(_quiet_close(client), timeout)
    except Exception as exc:  # the link is gone anyway; drop the socket and move on
        log.debug("event=close_failed error=%r", exc)
    finally:
        _drop_socket(client)


def _drop_socket(client: Client) -> None:
    """Close the TCP connection whatever asyncua thinks its state is.

    After its watchdog declares a session dead (a server that stopped answering
    but keeps the TCP connection open), asyncua marks the client disconnected
    and `disconnect_socket()` then does nothing: the socket would leak.
    """
    protocol = client.uaclient.protocol
    client.disconnect_socket()
    transport = getattr(protocol, "transport", None)
    if transport is not None and not transport.is_closing():
        transport.close()


async def _quiet_close(client: Client) -> None:
    """Stop the client's background tasks without sending anything over a dead link."""
    client.uaclient.request_disconnect()
    client.uaclient.pre_request_hook = None
    tasks: list[Any] = [getattr(client, name, None) for name in
                        ("_stale_watchdog_task", "_supervisor_task", "_renew_channel_task")]
    tasks.append(getattr(client.uaclient.session, "_publish_task", None))
    running = [t for t in tasks if isinstance(t, asyncio.Task) and not t.done()]
    if not running:
        return
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
