"""Test peers for label printers: a raw TCP 9100 capture server (ZPL) and a private CUPS daemon (IPP).

`ZplCapture` listens on a loopback port as a Zebra-compatible printer does:
each connection's bytes are one job, kept in arrival order; `stop()` and
`start()` switch it off and on at the same port (a printer that is off); it
answers a host status query (`~HS`) with its `paper_out` and `paused` flags.
`zpl_labels` splits a job into `^XA..^XZ` formats and reads their field data
and barcode commands. `Cups` runs the distribution's own cupsd with a
temporary configuration: one raw queue whose device is a file, jobs kept
(`PreserveJobFiles`), so a test reads back each job's document exactly as the
gateway sent it and CUPS's own job list.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path

from tests.helpers import free_port, port_open, wait_for


class ZplCapture:
    """A raw TCP printer on 127.0.0.1:`port` that keeps what it receives."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.jobs: list[bytes] = []
        #: what the printer's host status (~HS) reports
        self.paper_out = False
        self.paused = False
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "ZplCapture":
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        s.settimeout(0.2)
        self._sock = s
        self._thread = threading.Thread(target=self._serve, args=(s,), daemon=True)
        self._thread.start()
        return self

    def _serve(self, s: socket.socket) -> None:
        while self._sock is s:
            try:
                conn, _ = s.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5.0)
                data = b""
                try:
                    while chunk := conn.recv(65536):
                        data += chunk
                        if b"~HS" in data:          # host status: answered at once, as a Zebra does
                            data = data.replace(b"~HS\r\n", b"").replace(b"~HS", b"")
                            conn.sendall(self.host_status())
                except OSError:
                    pass
                if data.strip():
                    with self._lock:
                        self.jobs.append(data)

    def host_status(self) -> bytes:
        """The three `~HS` strings of a Zebra (ZPL II manual): paper out and pause flags in the first,
        head up and ribbon out in the second."""
        one = f"030,{int(self.paper_out)},{int(self.paused)},1245,000,0,0,0,000,0,0,0"
        two = "000,0,0,0,0,2,4,0,00000000,1,000"
        return b"".join(b"\x02" + s.encode() + b"\x03\r\n" for s in (one, two, "1234,0"))

    def stop(self) -> None:
        s, self._sock = self._sock, None
        if s is not None:
            s.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def labels(self) -> list[dict]:
        with self._lock:
            jobs = list(self.jobs)
        return [label for job in jobs for label in zpl_labels(job)]


def zpl_labels(job: bytes) -> list[dict]:
    """Each `^XA..^XZ` format of a job: its text fields and barcodes (command, data) in order."""
    out = []
    for fmt in re.findall(rb"\^XA(.*?)\^XZ", job, re.S):
        text = fmt.decode("utf-8")
        fields = []
        # a field: optional ^FO, a drawing command (^A0, ^BC, ^BX, ^BQ), optional ^FH, then ^FD..^FS
        for m in re.finditer(r"\^FO\d+,\d+\n?(\^BY\d+)?(\^(A0|BC|BX|BQ)[^\n^]*)\n?(\^FH\\)?\^FD(.*?)\^FS", text, re.S):
            data = m.group(5)
            if m.group(4):
                data = re.sub(r"\\([0-9A-Fa-f]{2})", lambda h: chr(int(h.group(1), 16)), data)
            fields.append({"command": m.group(2), "data": data})
        out.append({"zpl": text, "fields": fields})
    return out


CUPSD_CONF = """\
LogLevel warn
Listen 127.0.0.1:{port}
DefaultAuthType None
MaxJobs 0
PreserveJobHistory Yes
PreserveJobFiles Yes
WebInterface No
<Location />
  Order allow,deny
  Allow all
</Location>
<Policy default>
  JobPrivateAccess all
  JobPrivateValues none
  <Limit All>
    Order allow,deny
    Allow all
  </Limit>
</Policy>
"""

CUPS_FILES_CONF = """\
ServerRoot {root}/etc
RequestRoot {root}/spool
TempDir {root}/tmp
CacheDir {root}/cache
StateDir {root}/state
ServerBin /usr/lib/cups
DataDir /usr/share/cups
AccessLog {root}/log/access_log
ErrorLog {root}/log/error_log
PageLog {root}/log/page_log
FileDevice Yes
Sandboxing Relaxed
"""


class Cups:
    """A private cupsd on 127.0.0.1:`port` with one raw queue `labels` printing to a file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"ipp://127.0.0.1:{self.port}/printers/labels"

    def start(self) -> "Cups":
        if not shutil.which("cupsd") and not os.path.exists("/usr/sbin/cupsd"):
            raise RuntimeError("cupsd is not installed (tests/setup.sh installs cups-daemon)")
        for d in ("etc", "spool", "tmp", "cache", "state", "log", "etc/ppd", "out"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "out").chmod(0o1777)   # the file device is written by cupsd's unprivileged user
        (self.root / "etc/cupsd.conf").write_text(CUPSD_CONF.format(port=self.port))
        (self.root / "etc/cups-files.conf").write_text(CUPS_FILES_CONF.format(root=self.root))
        self.proc = subprocess.Popen(["/usr/sbin/cupsd", "-f", "-c", str(self.root / "etc/cupsd.conf"),
                                      "-s", str(self.root / "etc/cups-files.conf")],
                                     stdout=subprocess.DEVNULL, stderr=open(self.root / "log/stderr", "wb"),
                                     start_new_session=True)
        wait_for(lambda: port_open(self.port), 20, "cupsd to listen")
        subprocess.run(["lpadmin", "-h", f"127.0.0.1:{self.port}", "-p", "labels", "-E",
                        "-v", f"file://{self.root}/out/printed", "-m", "raw"],
                       check=True, capture_output=True, timeout=30)
        return self

    def restart(self) -> None:
        """Start cupsd again on the same port and spool (a printer back from an outage keeps its jobs)."""
        self.proc = subprocess.Popen(["/usr/sbin/cupsd", "-f", "-c", str(self.root / "etc/cupsd.conf"),
                                      "-s", str(self.root / "etc/cups-files.conf")],
                                     stdout=subprocess.DEVNULL, stderr=open(self.root / "log/stderr", "ab"),
                                     start_new_session=True)
        wait_for(lambda: port_open(self.port), 20, "cupsd to listen again")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def documents(self) -> list[bytes]:
        """The document of every job CUPS took, in job order (its spool keeps them: PreserveJobFiles)."""
        files = sorted((self.root / "spool").glob("d*-001"), key=lambda p: int(p.name[1:].split("-")[0]))
        return [p.read_bytes() for p in files]

    def completed(self, count: int, timeout: float = 30.0) -> None:
        """Wait until CUPS reports `count` completed jobs (lpstat, over IPP)."""
        def done() -> bool:
            out = subprocess.run(["lpstat", "-h", f"127.0.0.1:{self.port}", "-W", "completed", "-o", "labels"],
                                 capture_output=True, text=True, timeout=10).stdout
            return len([line for line in out.splitlines() if line.strip()]) >= count
        wait_for(done, timeout, f"{count} completed CUPS jobs", interval=0.3)



class CutAnswers:
    """A TCP relay on 127.0.0.1:`port` to 127.0.0.1:`target` that cuts the first `cuts` answers: the
    request reaches the printer whole, then the connection drops before the answer comes back (a
    network cut, or a printer going away, at the worst moment)."""

    def __init__(self, target: int, cuts: int = 1) -> None:
        self.port = free_port()
        self.target = target
        self.cuts = cuts
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self._running = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self._running:
            try:
                client, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            cut = self.cuts > 0
            self.cuts -= 1 if cut else 0
            threading.Thread(target=self._relay, args=(client, cut), daemon=True).start()

    def _relay(self, client: socket.socket, cut: bool) -> None:
        with client, socket.create_connection(("127.0.0.1", self.target), timeout=10) as upstream:
            client.settimeout(10)
            upstream.settimeout(10)

            def forward() -> None:
                try:
                    while data := client.recv(65536):
                        upstream.sendall(data)
                except OSError:
                    pass
            t = threading.Thread(target=forward, daemon=True)
            t.start()
            try:
                while data := upstream.recv(65536):
                    if cut:                     # the printer answered: the requester never hears it
                        client.shutdown(socket.SHUT_RDWR)
                        return
                    client.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        self._running = False
        self._sock.close()
        self._thread.join(timeout=5)
