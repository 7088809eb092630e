"""Real OPC-UA peers for the driver tests: asyncua's own Server on a loopback port.

`OpcUaTestServer` runs asyncua's `Server` in its own thread and event loop (so a
server can outlive one test's `asyncio.run`, and be stopped and started again on
the same port), with a small machine in namespace `urn:linebridge:test`
(index 2): `ns=2;s=Machine1.Counter` (UInt32), `.Temperature` (Double),
`.Running` (Boolean), `.Recipe` (String), `.Level` (Double) and `.Pressure`
(Double, with an EURange of 0..200). Tests change values with `write()`.
`make_certificate` makes a certificate and key with `cryptography`.
`SilentServer` accepts TCP connections and never answers. `next_batch` and
`collect` wait for conditions on a driver's samples with a deadline.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from pathlib import Path
from typing import Any, Awaitable, Callable

from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from drivers.base import ConfigCollector, Quality, Sample
from tests.drivers.peers import SilentServer, by_tag, free_port, next_batch  # noqa: F401 (re-exported)

# asyncua is chatty (every publish, every refused login); the tests read our log lines only
logging.getLogger("asyncua").setLevel(logging.CRITICAL)

NAMESPACE = "urn:linebridge:test"
SERVER_URI = "urn:linebridge:test:server"
INITIAL: dict[str, tuple[Any, ua.VariantType]] = {
    "Counter": (41, ua.VariantType.UInt32),
    "Temperature": (21.5, ua.VariantType.Double),
    "Running": (True, ua.VariantType.Boolean),
    "Recipe": ("PN-100", ua.VariantType.String),
    "Level": (10.0, ua.VariantType.Double),
    "Pressure": (100.0, ua.VariantType.Double),
}


def node(name: str) -> str:
    """`ns=2;s=Machine1.<name>`"""
    return f"ns=2;s=Machine1.{name}"


class Users:
    """asyncua user manager that knows one user: `operator` / `s3cret`."""

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username == "operator" and password == "s3cret":
            return User(role=UserRole.User)
        return None


class OpcUaTestServer:
    """asyncua's Server in a thread of its own, on 127.0.0.1:`port`.

    With `certificate`/`private_key` it offers only Basic256Sha256 SignAndEncrypt
    and user name login (`Users`), and accepts a client certificate only when it
    is byte for byte the one in `trusted_client` at the time of the session
    (an explicit trust list of one, like a server's trusted folder).
    `max_subscriptions=0` makes it refuse every subscription.
    """

    def __init__(self, port: int | None = None, *, certificate: Path | None = None,
                 private_key: Path | None = None, trusted_client: Path | None = None,
                 max_subscriptions: int | None = None,
                 initial: dict[str, Any] | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/linebridge/"
        self.certificate, self.private_key = certificate, private_key
        self.trusted_client = trusted_client
        self.max_subscriptions = max_subscriptions
        self.initial = {name: value for name, (value, _) in INITIAL.items()} | (initial or {})
        self.sessions_refused = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._nodes: dict[str, Any] = {}

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> "OpcUaTestServer":
        self._ready.clear()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),),
                                        name=f"opcua-server-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise AssertionError(f"the OPC-UA test server did not start within {timeout} s")
        if self._error is not None:
            raise AssertionError(f"the OPC-UA test server failed to start: {self._error!r}")
        return self

    def stop(self, timeout: float = 15.0) -> None:
        if self._thread is None:
            return
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("the OPC-UA test server thread did not stop")
        self._thread = None

    def __enter__(self) -> "OpcUaTestServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _main(self) -> None:
        try:
            server = await self._build()
            await server.start()
        except BaseException as exc:  # report it to start() instead of dying silently
            self._error = exc
            self._ready.set()
            return
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await server.stop()

    async def _build(self) -> Server:
        secure = self.certificate is not None
        server = Server(user_manager=Users() if secure else None)
        server.disable_clock()  # no 1 s time task: stops at once
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("linebridge test server")
        await server.set_application_uri(SERVER_URI)
        if self.max_subscriptions is not None:
            server.iserver.max_subscriptions = self.max_subscriptions
        if secure:
            assert self.private_key is not None
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            server.set_identity_tokens([ua.UserNameIdentityToken])
            await server.load_certificate(str(self.certificate))
            await server.load_private_key(str(self.private_key))
            server.set_certificate_validator(self._validate_client)
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(NAMESPACE)
        objects = server.nodes.objects
        machine = await objects.add_object(ua.NodeId("Machine1", idx), f"{idx}:Machine1")
        for name, (_, vtype) in INITIAL.items():
            var = await machine.add_variable(ua.NodeId(f"Machine1.{name}", idx),
                                             f"{idx}:{name}", ua.Variant(self.initial[name], vtype))
            self._nodes[name] = var
        await self._nodes["Pressure"].add_property(0, "EURange", ua.Range(Low=0.0, High=200.0))
        line = await objects.add_folder(ua.NodeId("Line1", idx), f"{idx}:Line1")
        await line.add_variable(ua.NodeId("Line1.Speed", idx), f"{idx}:Speed",
                                ua.Variant(3, ua.VariantType.Int16))
        return server

    async def _validate_client(self, cert: x509.Certificate,
                               app: ua.ApplicationDescription) -> None:
        trusted = self.trusted_client.read_bytes() if self.trusted_client and \
            self.trusted_client.exists() else None
        if cert.public_bytes(serialization.Encoding.DER) != trusted:
            self.sessions_refused += 1
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    # -- values -------------------------------------------------------------------------

    def _run(self, coro: Awaitable[Any]) -> Any:
        assert self._loop is not None, "server not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]

    async def write(self, name: str, value: Any, status: int | None = None) -> None:
        """Set a variable (keeping its type), optionally with a status code instead of Good."""
        _, vtype = INITIAL[name]
        variant = ua.Variant(value, vtype) if value is not None else ua.Variant()
        datavalue = ua.DataValue(variant, StatusCode=ua.StatusCode(status or 0),
                                 SourceTimestamp=dt.datetime.now(dt.timezone.utc))
        await asyncio.wait_for(asyncio.wrap_future(
            self._run(self._nodes[name].write_value(datavalue))), 10)

    def freeze(self, until: threading.Event, limit: float = 30.0) -> None:
        """Block the server's event loop (TCP stays open, nothing answers) until `until` is set."""
        assert self._loop is not None, "server not started"
        self._loop.call_soon_threadsafe(until.wait, limit)

    async def reset(self) -> None:
        for name in INITIAL:
            await self.write(name, self.initial[name])


def make_certificate(folder: Path, stem: str, uri: str,
                     usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH
                     ) -> tuple[Path, Path]:
    """A self-signed RSA certificate (DER) and key (PEM) naming `uri`, like OPC-UA wants."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri),
                                                        x509.DNSName("localhost")]),
                           critical=False)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                         key_encipherment=True, data_encipherment=True,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{stem}.der", folder / f"{stem}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def parse(section: dict[str, Any], path: str = "devices.press1") -> Any:
    """The parsed config of a section that must be valid."""
    from drivers.opcua import OpcUaDriver
    issues = ConfigCollector()
    config = OpcUaDriver.parse_config(section, path, issues)
    assert issues.issues == [], [str(i) for i in issues.issues]
    return config


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def has(tag: str, value: Any = None,
        quality: Quality = Quality.GOOD) -> Callable[[list[Sample]], bool]:
    """Condition: the batch holds `tag` with `quality` (and `value`, when given)."""
    def check(batch: list[Sample]) -> bool:
        return any(s.tag == tag and s.quality is quality and (value is None or s.value == value)
                   for s in batch)
    return check
