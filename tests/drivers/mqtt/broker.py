"""A real mosquitto broker for tests, plus a small publisher, subscriber and TLS file maker.

`MosquittoBroker` runs /usr/sbin/mosquitto on a loopback port with its own
config file in a temp directory: anonymous or with users (a password file made
by `mosquitto_passwd -b -c`), optionally TLS (CA, server certificate, and
client certificates required or not). `start()` waits until the port accepts
connections, `stop()` ends it by pid (SIGTERM, then SIGKILL), `restart()`
starts it again on the same port. Sessions live in the broker's memory
(`persistence false`): they survive client reconnects, not a broker restart.
`publish` / `Publisher` send messages with paho and wait for the broker's
acknowledgement; `Subscriber` records what arrives (for the MQTT sink's
tests); `make_tls_files` makes a CA and certificates for 127.0.0.1.
Shared by the MQTT input driver's tests and the MQTT sink's tests.
"""
from __future__ import annotations

import datetime
import getpass
import ipaddress
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: a CA, the broker's certificate for 127.0.0.1, and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


class MosquittoBroker:
    """One mosquitto process on 127.0.0.1:`port`, configured in `workdir`."""

    def __init__(self, workdir: Path, port: int | None = None, *,
                 users: dict[str, str] | None = None, tls: TlsFiles | None = None,
                 require_certificate: bool = False, extra: list[str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.users = users
        self.tls = tls
        self.require_certificate = require_certificate
        self.extra = extra or []
        self.conf = self.workdir / "mosquitto.conf"
        self.log = self.workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _write_config(self) -> None:
        lines = [f"listener {self.port} 127.0.0.1",
                 "persistence false",
                 f"log_dest file {self.log}",
                 "log_type error", "log_type warning", "log_type notice",
                 "log_type information", "connection_messages true",
                 f"user {getpass.getuser()}"]  # as root, mosquitto would drop to 'mosquitto'
        if self.users:
            passwd = self.workdir / "passwd"
            passwd.unlink(missing_ok=True)
            for i, (user, password) in enumerate(self.users.items()):
                flags = ["-b", "-c"] if i == 0 else ["-b"]
                subprocess.run([MOSQUITTO_PASSWD, *flags, str(passwd), user, password],
                               check=True, capture_output=True, timeout=30)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls is not None:
            lines += [f"cafile {self.tls.ca}", f"certfile {self.tls.server_cert}",
                      f"keyfile {self.tls.server_key}",
                      f"require_certificate {'true' if self.require_certificate else 'false'}"]
        lines += self.extra
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 15.0) -> "MosquittoBroker":
        assert not self.running, "broker already running"
        out = open(self.workdir / "mosquitto.out", "ab")
        try:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        finally:
            out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: "
                                   f"{self.output()}")
            if port_open(self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout}s: "
                           f"{self.output()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by pid, SIGKILL if it lingers; returns once the process is gone."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)

    def restart(self, timeout: float = 15.0) -> "MosquittoBroker":
        """Stop and start again on the same port (sessions in memory are lost)."""
        self.stop()
        return self.start(timeout)

    def output(self) -> str:
        text = ""
        for path in (self.workdir / "mosquitto.out", self.log):
            if path.exists():
                text += path.read_text(errors="replace")[-2000:]
        return text

    def __enter__(self) -> "MosquittoBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _client(client_id: str = "", *, username: str | None = None, password: str | None = None,
            clean_session: bool = True) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=clean_session, protocol=mqtt.MQTTv311)
    if username is not None:
        client.username_pw_set(username, password)
    return client


class Publisher:
    """A connected paho client that publishes and waits for the broker's acknowledgement."""

    def __init__(self, port: int, *, username: str | None = None,
                 password: str | None = None, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._connected = threading.Event()
        self.client = _client(username=username, password=password)
        self.client.on_connect = lambda c, u, f, rc, p: (not rc.is_failure
                                                         and self._connected.set())
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self.close()
            raise RuntimeError(f"test publisher could not connect to port {port}")

    def publish(self, topic: str, payload: bytes | str | Any, qos: int = 1,
                retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(self.timeout)
        if not info.is_published():
            raise RuntimeError(f"publish to {topic} not acknowledged within {self.timeout}s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def publish(port: int, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False,
            **auth: Any) -> None:
    """Publish one message with a short-lived client and wait for the acknowledgement."""
    with Publisher(port, **auth) as pub:
        pub.publish(topic, payload, qos=qos, retain=retain)


class Subscriber:
    """Records every message on `topic_filter` as (topic, payload, qos, retain)."""

    def __init__(self, port: int, topic_filter: str, *, qos: int = 1,
                 username: str | None = None, password: str | None = None,
                 timeout: float = 10.0) -> None:
        self.messages: list[tuple[str, bytes, int, bool]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = _client(username=username, password=password)

        def on_connect(client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
            if not rc.is_failure:
                client.subscribe(topic_filter, qos)

        def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
            with self._lock:
                self.messages.append((msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_message = on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not subscribed.wait(timeout):
            self.close()
            raise RuntimeError(f"test subscriber could not subscribe on port {port}")

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[str, bytes, int, bool]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} message(s) within {timeout}s, "
                             f"got {len(self.messages)}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_tls_files(directory: Path) -> TlsFiles:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder().subject_name(name("linebridge test CA"))
               .issuer_name(name("linebridge test CA")).public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                            crl_sign=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                              critical=False)
               .sign(ca_key, hashes.SHA256()))

    def issue(cn: str, usage: Any, san: list[x509.GeneralName] | None) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(cn))
                   .issuer_name(ca_cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       ca_key.public_key()), critical=False))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    server_cert, server_key = issue(
        "127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    client_cert, client_key = issue("linebridge-test-client", ExtendedKeyUsageOID.CLIENT_AUTH,
                                    None)
    files = TlsFiles(ca=directory / "ca.pem", server_cert=directory / "server.pem",
                     server_key=directory / "server.key", client_cert=directory / "client.pem",
                     client_key=directory / "client.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    write_key(server_key, files.server_key)
    files.client_cert.write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    write_key(client_key, files.client_key)
    return files
