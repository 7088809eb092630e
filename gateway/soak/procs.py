"""The soak's child processes and the faults done to them: gateway, Odoo sandbox, broker, plants, disk.

It owns starting and stopping each peer by pid (never by name), the gateway's
wall-clock offset (libfaketime, set per start, so a restart after kill -9 can
land an hour earlier or later), the gateway's log read line by line (retry runs
counted, the rest kept in a file), the tmpfs under the state directory, filled by
shrinking it to what it holds. Nothing here decides when a fault happens: that is
the schedule's and the runner's.
"""
from __future__ import annotations

import collections
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

FAKETIME_LIB = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))),
                    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"))
MOSQUITTO = Path("/usr/sbin/mosquitto")
_RETRY = re.compile(rb"event=(delivery_retry|mqtt_connect_failed|mqtt_connection_lost) sink=(\S+)")
_SUCCESS = re.compile(rb"event=(delivered|mqtt_connected|held_released) sink=(\S+)")


class SoakError(RuntimeError):
    """The soak cannot run here (a missing tool, no mount, a peer that does not start)."""


def free_port() -> int:
    """A free loopback port below the ephemeral range.

    Peers are stopped and started again on the same port; one from the ephemeral
    range may meanwhile be some connection's source port (the gateway alone opens
    hundreds a second while a peer is down), and the restart would fail.
    """
    low = 32768
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SoakError(f"no free loopback port below {low}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, proc: subprocess.Popen | None, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SoakError(f"{what} exited with code {proc.returncode} before it listened on port {port}")
        if port_open(port):
            return
        time.sleep(0.05)
    raise SoakError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def end(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Signal one child by its pid and reap it; SIGKILL if it outlives `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m ARGS...` in its own session, output appended to `log`."""
    with open(log, "ab") as fh:
        return subprocess.Popen([sys.executable, "-m", *args], stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, **(env or {})})


def rss_anon_kib(pid: int) -> int | None:
    """The process's anonymous resident memory (heap, not the store's file-backed map)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RetryRuns:
    """Consecutive failed delivery attempts per sink, read from the gateway's log lines.

    A run grows with each `delivery_retry` / `mqtt_connect_failed` line of a sink
    and ends at that sink's next success or at the end of the process.
    """

    def __init__(self) -> None:
        self.current: dict[str, int] = collections.defaultdict(int)
        self.longest: dict[str, int] = collections.defaultdict(int)
        self.total = 0
        self.lock = threading.Lock()

    def feed(self, line: bytes) -> bool:
        """Count one log line; True when it was a retry (those are not all kept)."""
        m = _RETRY.search(line)
        with self.lock:
            if m:
                sink = m.group(2).decode(errors="replace")
                self.current[sink] += 1
                self.total += 1
                if self.current[sink] > self.longest[sink]:
                    self.longest[sink] = self.current[sink]
                return True
            m = _SUCCESS.search(line)
            if m:
                self.current[m.group(2).decode(errors="replace")] = 0
        return False

    def restart(self) -> None:
        with self.lock:
            self.current.clear()

    def run_of(self, sink: str) -> int:
        with self.lock:
            return self.current.get(sink, 0)


class Gateway:
    """`linebridge run` as a child, restarted at will, with a wall-clock offset per start."""

    def __init__(self, config: Path, state: Path, log: Path, runs: RetryRuns) -> None:
        self.config, self.state, self.log, self.runs = config, state, log, runs
        self.proc: subprocess.Popen | None = None
        self.errors: collections.deque[str] = collections.deque(maxlen=50)
        self.error_lines = 0
        self.task_deaths = 0    # supervised tasks that died and were restarted (event=task_died)
        self.tail: collections.deque[str] = collections.deque(maxlen=200)
        self._reader: threading.Thread | None = None
        self.offset_h = 0
        self.started_at = 0.0
        self.ready_at: float | None = None   # when it logged event=started (its store open, tasks running)

    def start(self, offset_h: int = 0) -> None:
        env = {}
        if offset_h:
            if not FAKETIME_LIB.exists():
                raise SoakError(f"wall-clock steps need libfaketime ({FAKETIME_LIB}): "
                                "apt-get install faketime (tests/setup.sh does)")
            env = {"LD_PRELOAD": str(FAKETIME_LIB), "FAKETIME": f"{offset_h:+d}h",
                   "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_NO_CACHE": "0"}
        self.runs.restart()
        self.offset_h = offset_h
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "--log-level", "INFO", "run", "--config", str(self.config),
             "--state-dir", str(self.state)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, env={**os.environ, **env})
        self.started_at = time.monotonic()
        self.ready_at = None
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), name="soak-gateway-log",
                                        daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        kept = 0
        with open(self.log, "ab") as out:
            out.write(f"--- gateway start pid {self.proc.pid if self.proc else '?'}, wall clock "
                      f"{self.offset_h:+d} h, {time.strftime('%H:%M:%S')} real ---\n".encode())
            for line in stream:
                if self.runs.feed(line):
                    kept += 1
                    if kept % 10_000 != 1:  # a retry line in ten thousand is enough to read
                        continue
                text = line.decode(errors="replace").rstrip()
                if self.ready_at is None and "event=started " in text:
                    self.ready_at = time.monotonic()
                self.tail.append(text)
                if "event=task_died" in text:
                    self.task_deaths += 1
                if "level=ERROR" in text or "level=CRITICAL" in text or text.startswith("Traceback"):
                    self.error_lines += 1
                    self.errors.append(text[:300])
                out.write(line)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        self._join()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        end(self.proc, signal.SIGTERM, timeout=30)
        self._join()
        return self.proc.returncode

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=10)
            self._reader = None

    def rss_kib(self) -> int | None:
        return rss_anon_kib(self.proc.pid) if self.alive and self.proc else None


class Broker:
    """mosquitto on a loopback port, persistent (sessions and queued messages survive a restart)."""

    def __init__(self, workdir: Path, port: int) -> None:
        if not MOSQUITTO.exists():
            raise SoakError(f"the soak needs mosquitto ({MOSQUITTO}): apt-get install mosquitto")
        self.workdir, self.port = workdir, port
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
        self.conf.write_text("\n".join([
            f"listener {port} 127.0.0.1", "allow_anonymous true",
            "persistence true", f"persistence_location {workdir}/", "autosave_interval 30",
            "max_queued_messages 0", "max_inflight_messages 100", f"user {user}",
            f"log_dest file {workdir / 'mosquitto.log'}", "log_type error", "log_type warning",
            "log_type notice"]) + "\n")
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    def start(self) -> None:
        for attempt in range(3):
            with open(self.workdir / "mosquitto.out", "ab") as out:
                self.proc = subprocess.Popen([str(MOSQUITTO), "-c", str(self.conf)], stdout=out,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
            try:
                wait_port(self.port, self.proc, "mosquitto")
                return
            except SoakError:
                end(self.proc)
                if attempt == 2:
                    tail = (self.workdir / "mosquitto.log").read_text(errors="replace")[-500:]
                    raise SoakError(f"mosquitto does not start again on port {self.port}: {tail}") from None
                time.sleep(1.0)

    def stop(self) -> None:
        end(self.proc, signal.SIGTERM)  # SIGTERM: mosquitto saves its persistence file first
        self.proc = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Odoo:
    """The Odoo sandbox as a child on a fixed port, its database in a JSON file across restarts."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir, self.port = workdir, port
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    def start(self) -> None:
        for attempt in range(3):
            self.proc = spawn(["gateway.cli", "sandbox", "odoo", "--port", str(self.port), "--data",
                               str(self.workdir / "odoo.json")], self.workdir / "odoo.log")
            try:
                wait_port(self.port, self.proc, "the Odoo sandbox", timeout=60)
                return
            except SoakError:
                end(self.proc)
                if attempt == 2:
                    raise
                time.sleep(1.0)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        end(self.proc, sig, timeout=60)
        self.proc = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Tmpfs:
    """A tmpfs of `size_mib` mounted on `path` (root only), shrunk to what it holds to make it full."""

    def __init__(self, path: Path, size_mib: int) -> None:
        self.path, self.size_mib = path, size_mib
        self.mounted = False
        self.full = False

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            raise SoakError(f"the soak mounts a tmpfs on its state directory to fill it: run it as root "
                            f"(mount -t tmpfs needs CAP_SYS_ADMIN; uid is {os.geteuid()})")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mib}m,mode=0700", "tmpfs",
                               str(self.path)], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise SoakError(f"cannot mount a tmpfs on {self.path} for the full-disk fault: "
                            f"{(done.stderr or done.stdout).strip() or 'mount failed'}")
        self.mounted = True

    def fill(self) -> int:
        """Shrink the filesystem to what it holds: the gateway's next new page meets ENOSPC.

        Returns the bytes that were free. A remount costs nothing, where a ballast
        file would take the free space out of memory.
        """
        st = os.statvfs(self.path)
        free = st.f_bavail * st.f_frsize
        used_kib = (st.f_blocks - st.f_bfree) * st.f_frsize // 1024 + 4
        self._remount(f"{used_kib}k")
        self.full = True
        return free

    def free(self) -> None:
        if self.full:
            self._remount(f"{self.size_mib}m")
            self.full = False

    def _remount(self, size: str) -> None:
        done = subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], capture_output=True,
                              text=True, timeout=30)
        if done.returncode != 0:
            raise SoakError(f"cannot resize the tmpfs on {self.path} to {size}: {done.stderr.strip()}")

    def used_mib(self) -> float:
        st = os.statvfs(self.path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize / 2**20

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=30)
            self.mounted = False
