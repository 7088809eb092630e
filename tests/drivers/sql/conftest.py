"""Throwaway database servers for the SQL driver tests: PostgreSQL (per module) and MariaDB (per session).

PostgreSQL: initdb into a temp dir, own port, own socket.

initdb refuses root, so as root the cluster is made and run as the `postgres`
user (`runuser`). It listens on 127.0.0.1 at a free port and is stopped by
`pg_ctl stop -m immediate` and removed when the module's tests are done.

MariaDB (`mariadb_server.py`): one server per test session, started from a
fresh `mariadb-install-db` data dir and killed by pid at the end; each test
makes its own tables in database `mes`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.drivers.sql.mariadb_server import MariaDb
from tests.helpers import free_port


@dataclass
class Cluster:
    root: Path
    port: int

    def dsn(self, user: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} dbname=postgres user={user}"

    def ctl(self, *args: str) -> None:
        _as_postgres(["pg_ctl", "-D", str(self.root / "data"), *args])

    def start(self) -> None:
        self.ctl("-l", str(self.root / "log"), "-w", "-t", "20", "-o",
                 f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
                 "start")

    def stop(self) -> None:
        self.ctl("-m", "immediate", "-w", "stop")

    def sql(self, *statements: str) -> None:
        import psycopg
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as conn:
            for s in statements:
                conn.execute(s)


def _as_postgres(cmd: list[str]) -> None:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pg() -> Iterator[Cluster]:
    if shutil.which("initdb") is None:
        pytest.fail("PostgreSQL is not installed (tests/setup_odoo.sh installs it)")
    root = Path(tempfile.mkdtemp(prefix="lb-pg-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = Cluster(root, free_port())
    try:
        _as_postgres(["initdb", "-D", str(root / "data"), "-U", "postgres", "--auth=trust",
                      "--no-sync", "-E", "UTF8"])
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.stop()
        except subprocess.CalledProcessError:
            pass   # already stopped
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDb]:
    root = Path(tempfile.mkdtemp(prefix="lb-maria-"))
    server = MariaDb(root)
    try:
        try:
            server.install()
        except RuntimeError as exc:
            pytest.fail(str(exc))
        server.start()
        server.sql("CREATE DATABASE mes", db=None)
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
