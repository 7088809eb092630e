"""A throwaway MariaDB server for the SQL driver tests: mariadb-install-db into a temp dir, own port, own socket.

The data directory, socket, pid file and error log live in one temp dir; the
server listens on 127.0.0.1 at a free port and on a socket the tests' admin
connection (root without a password: a throwaway server on loopback) uses.
It offers TLS with a throwaway CA's certificate for 127.0.0.1 (`tls.ca`), so
the driver's default `sslmode = prefer` runs encrypted. As root the server runs as
root (`--user=root`), otherwise as the calling user. `stop` kills it by its pid
(SIGKILL: the tests want a dead server, not a clean shutdown) and waits for it.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.drivers.mqtt.broker import TlsFiles, make_tls_files
from tests.helpers import free_port, port_open, wait_for

MARIADBD = "/usr/sbin/mariadbd"


@dataclass
class MariaDb:
    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    tls: TlsFiles | None = None

    @property
    def socket(self) -> str:
        return str(self.root / "sock")

    def dsn(self, user: str = "reader", db: str = "mes", tls: str = "") -> str:
        """The driver's dsn over TCP; `tls` appends e.g. `sslmode=verify-full sslrootcert=...`."""
        return f"host=127.0.0.1 port={self.port} dbname={db} user={user} {tls}".strip()

    def install(self) -> None:
        if shutil.which("mariadb-install-db") is None or not Path(MARIADBD).exists():
            raise RuntimeError("MariaDB is not installed (tests/setup.sh installs mariadb-server)")
        self.tls = make_tls_files(self.root / "tls")
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.root / 'data'}",
                        f"--user={_user()}", "--auth-root-authentication-method=normal",
                        "--skip-test-db"], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        log = open(self.root / "out.log", "ab")
        self.proc = subprocess.Popen(
            [MARIADBD, "--no-defaults", f"--user={_user()}", f"--datadir={self.root / 'data'}",
             f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--pid-file={self.root / 'pid'}", f"--log-error={self.root / 'error.log'}",
             "--skip-name-resolve", "--innodb-buffer-pool-size=16M",
             "--innodb-flush-log-at-trx-commit=0", "--skip-log-bin",
             *([f"--ssl-ca={self.tls.ca}", f"--ssl-cert={self.tls.server_cert}",
                f"--ssl-key={self.tls.server_key}"] if self.tls else [])],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(lambda: self._alive() and port_open(self.port) and Path(self.socket).exists(), 30,
                 f"mariadbd to listen on port {self.port} (see {self.root / 'error.log'})")

    def _alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"mariadbd exited with {self.proc.returncode}: "
                               f"{(self.root / 'error.log').read_text(errors='replace')[-2000:]}")
        return True

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    def sql(self, *statements: str, db: str | None = "mes") -> list[Any]:
        """Run statements as root over the socket; the rows of the last one."""
        import pymysql
        conn = pymysql.connect(unix_socket=self.socket, user="root", database=db,
                               connect_timeout=5, read_timeout=30, autocommit=True)
        try:
            rows: list[Any] = []
            with conn.cursor() as cur:
                for s in statements:
                    cur.execute(s)
                    rows = list(cur.fetchall())
            return rows
        finally:
            conn.close()


def _user() -> str:
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name
