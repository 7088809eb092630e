"""Real Odoo as a test peer: find a version built by tests/setup_odoo.sh, run it, talk to it.

`find_peer(version)` reads the build that tests/setup_odoo.sh left under
$LINEBRIDGE_ODOO_CACHE (default /var/cache/linebridge/odoo) for the tarball or
tree of that version in $LINEBRIDGE_ODOO_PEERS, and fails with a message naming
the variable when there is none. `OdooServer.new_db()` copies the build's template
database (`createdb -T`, with its filestore) into a fresh database; the server runs
`odoo-bin --workers 0` on a free loopback port serving this session's
databases, waits until it answers, and can be stopped (SIGTERM), killed
(SIGKILL) and started again on the same databases; `drop_all()` removes them.
`SandboxOdoo` is the same for the Odoo sandbox (`linebridge sandbox odoo`, its
database persisted to a file), so every scenario also runs against it as a
contract test. `Rpc` is a small JSON-RPC `execute_kw` client, the way an
integrator's script talks to Odoo, used for master data and to read what the
gateway wrote.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import free_port, linebridge, port_open, stop, wait_for

PEERS_ENV = "LINEBRIDGE_ODOO_PEERS"
CACHE_ENV = "LINEBRIDGE_ODOO_CACHE"
DEFAULT_CACHE = "/var/cache/linebridge/odoo"
VERSIONS = ("16.0", "17.0", "18.0", "19.0")
LOGIN = PASSWORD = "admin"


class PeerMissing(Exception):
    """No usable build of a real Odoo version; the message says what to do."""


@dataclass(frozen=True)
class Peer:
    """One built Odoo version (tests/setup_odoo.sh's peer.json)."""

    version: str
    src: Path
    python: Path
    data_dir: Path
    addons_path: str
    template: str
    template_qc: str | None
    qc_addons_path: str | None
    api_key: str | None

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


def _source(peers: Path, version: str) -> Path | None:
    for pattern in (f"odoo-{version}*.tar.xz", f"odoo-{version}*"):
        for p in sorted(peers.glob(pattern)):
            if p.is_file() or (p / "odoo-bin").exists():
                return p
    return None


def _key(source: Path) -> str:
    h = hashlib.sha256()
    if source.is_file():
        with open(source, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    else:
        h.update((source / "odoo" / "release.py").read_bytes() + (source / "requirements.txt").read_bytes())
    return h.hexdigest()[:16]


def find_peer(version: str) -> Peer:
    """The build of `version`, or PeerMissing saying which variable or step is missing."""
    peers = os.environ.get(PEERS_ENV)
    if not peers:
        raise PeerMissing(f"{PEERS_ENV} is not set: point it at the folder holding odoo-<version>-*.tar.xz "
                          f"(CI: ../shared/peers/odoo) and run tests/setup.sh")
    source = _source(Path(peers), version)
    if source is None:
        raise PeerMissing(f"{PEERS_ENV}={peers} holds no odoo-{version}*.tar.xz or odoo-{version}*/ tree")
    build = Path(os.environ.get(CACHE_ENV, DEFAULT_CACHE)) / f"{version}-{_key(source)}" / "peer.json"
    if not build.exists():
        raise PeerMissing(f"Odoo {version} from {source} is not built ({build} missing): run tests/setup.sh "
                          f"with {PEERS_ENV}={peers}")
    d = json.loads(build.read_text())
    return Peer(version, Path(d["src"]), Path(d["python"]), Path(d["data_dir"]), d["addons_path"], d["template"],
                d.get("template_qc"), d.get("qc_addons_path"), d.get("api_key"))


class Rpc:
    """`execute_kw` over /jsonrpc as admin with the password (served by 16.0 to 19.0)."""

    def __init__(self, url: str, db: str, timeout: float = 60.0) -> None:
        self.url, self.db = url, db
        self.http = httpx.Client(timeout=timeout)
        self.uid: int | None = None

    def _call(self, service: str, method: str, *args: Any) -> Any:
        body = {"jsonrpc": "2.0", "method": "call", "id": 1,
                "params": {"service": service, "method": method, "args": list(args)}}
        reply = self.http.post(f"{self.url}/jsonrpc", json=body).json()
        if "error" in reply:
            err = reply["error"].get("data", {})
            raise RuntimeError(f"{method}{args[3:5] if service == 'object' else ''}: "
                               f"{err.get('name')}: {err.get('message')}")
        return reply.get("result")  # Odoo leaves out a None result

    def __call__(self, model: str, method: str, *args: Any, **kw: Any) -> Any:
        if self.uid is None:
            self.uid = self._call("common", "login", self.db, LOGIN, PASSWORD)
            assert self.uid, f"admin cannot log in to {self.db}"
        return self._call("object", "execute_kw", self.db, self.uid, PASSWORD, model, method, list(args), kw)

    def close(self) -> None:
        self.http.close()


def _psql(*args: str) -> None:
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {out.stderr.strip()}")


def _copy_template(template: str, db: str) -> None:
    """`createdb -T`; the template first refuses connections (19.0's cron thread visits every database,
    and a template with a session cannot be copied), so only a copy in progress can hold it."""
    _psql("psql", "-q", "-d", "postgres", "-c", f'ALTER DATABASE "{template}" WITH ALLOW_CONNECTIONS false')
    deadline = time.monotonic() + 120  # other sessions on this machine copy the same template
    while True:
        try:
            _psql("createdb", "-T", template, db)
            return
        except RuntimeError as exc:
            if "being accessed by other users" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5 + random.random())


class OdooServer:
    """A real `odoo-bin` serving this session's databases, each a fresh copy of the peer's template."""

    sandbox = False

    def __init__(self, peer: Peer, work: Path) -> None:
        self.peer, self.work = peer, work
        self.version, self.major, self.api_key = peer.version, peer.major, peer.api_key
        self.prefix = f"lb{peer.major}_{uuid.uuid4().hex[:6]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / f"odoo-{peer.version}.log"
        self.data_dir = work / "odoo-data"
        self.proc: subprocess.Popen | None = None
        self.databases: list[str] = []
        self.extra_options: list[str] = []  # more odoo-bin options, e.g. --log-level=debug_sql

    # -- databases --
    def new_db(self, quality: bool = False) -> "OdooDb":
        """A fresh database copied from the template (`createdb -T`, with the template's filestore)."""
        template = self.peer.template_qc if quality else self.peer.template
        if template is None:
            raise PeerMissing(f"Odoo {self.peer.version} has no quality_control_oca template (17.0 has one)")
        db = f"{self.prefix}_{len(self.databases) + 1}"
        _copy_template(template, db)
        self.databases.append(db)
        src = self.peer.data_dir / "filestore" / template
        if src.exists():
            shutil.copytree(src, self.data_dir / "filestore" / db)
        return OdooDb(self, db)

    def drop_all(self) -> None:
        self.stop()
        for db in self.databases:
            subprocess.run(["dropdb", "--if-exists", "--force", db], capture_output=True, timeout=120)
        self.databases.clear()

    # -- process --
    def command(self) -> list[str]:
        addons = self.peer.addons_path + (f",{self.peer.qc_addons_path}" if self.peer.qc_addons_path else "")
        return [str(self.peer.python), "odoo-bin", "--db_host=", f"--addons-path={addons}",
                f"--data-dir={self.data_dir}", "--http-interface=127.0.0.1", f"--http-port={self.port}",
                "--workers=0", f"--db-filter=^{self.prefix}_.*$", "--log-level=info", *self.extra_options]

    def start(self, timeout: float = 120.0) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), cwd=self.peer.src, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        wait_for(self.ready, timeout, f"Odoo {self.peer.version} on {self.url} (log {self.log_path})",
                 interval=0.3)

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"Odoo {self.peer.version} exited with {self.proc.returncode}:\n"
                                 + self.log()[-3000:])
        r = httpx.post(f"{self.url}/web/webclient/version_info", json={"jsonrpc": "2.0", "params": {}},
                       timeout=5)
        return r.status_code == 200 and "server_version" in r.text

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Stop Odoo by its pid (SIGTERM lets it finish, SIGKILL not); SIGKILL if SIGTERM takes too long."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


@dataclass
class OdooDb:
    """One database of a running real Odoo: where a gateway's sink points, and an RPC to check it."""

    server: "OdooServer | SandboxOdoo"
    name: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def version(self) -> str:
        return self.server.version

    @property
    def major(self) -> int:
        return self.server.major

    @property
    def sandbox(self) -> bool:
        return self.server.sandbox

    def rpc(self) -> Rpc:
        return Rpc(self.url, self.name)

    def sink_config(self, protocol: str | None = None) -> dict[str, str]:
        """url, database, login, api_key and protocol for a gateway's [sinks.odoo]: JSON-2 with the build's
        API key on 19.0 (unless another protocol is asked), else `protocol` (default jsonrpc) and the password."""
        if self.major >= 19 and protocol in (None, "json2"):
            assert self.server.api_key, "the 19.0 build has no API key (tests/setup_odoo.sh makes one)"
            return {"url": self.url, "database": self.name, "login": LOGIN, "api_key": self.server.api_key,
                    "protocol": "json2"}
        return {"url": self.url, "database": self.name, "login": LOGIN, "api_key": PASSWORD,
                "protocol": protocol or "jsonrpc"}




class SandboxOdoo:
    """`linebridge sandbox odoo` as its own process, one per database (its data file), same interface."""

    sandbox = True
    version, major, api_key = "17.0", 17, PASSWORD

    def __init__(self, work: Path) -> None:
        self.work = work
        self.proc: subprocess.Popen | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "sandbox-odoo.log"

    def new_db(self, quality: bool = False) -> OdooDb:
        self.stop()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = self.work / f"sandbox-{self.port}.json"
        self.quality = quality
        self.start()
        return OdooDb(self, "sandbox")

    def start(self, timeout: float = 30.0) -> None:
        args = ["sandbox", "odoo", "--port", str(self.port), "--data", str(self.data), "--odoo-version", self.version]
        if self.quality:
            args += ["--with-module", "quality_control_oca"]
        self.proc = linebridge(args, self.log_path)
        wait_for(lambda: self.proc.poll() is None and port_open(self.port), timeout, f"the Odoo sandbox on {self.port}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.proc is not None:
            stop(self.proc, sig, timeout)
            self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def drop_all(self) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
