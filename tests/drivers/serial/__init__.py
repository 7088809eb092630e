"""Real serial peers for the driver tests: socat pty pairs and instruments on the far end.

`SocatPair` starts `socat` joining two ptys whose stable paths are symlinks in
a temp dir (`dev` for the driver, `peer` for the test's instrument), waits for
both links, and stops socat by its pid (socat removes the links, like a USB
adapter's /dev/serial/by-id link disappearing on unplug). `FakeScale` answers
MT-SICS commands on the peer end from a thread, from a script the test gives.
`next_batch` waits on the driver's stream with a deadline instead of sleeping;
`Stream` pulls batches in the background so a test can wait for the port to
be open before its instrument speaks.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import serial

from drivers.base import Sample
from tests.drivers.peers import next_batch  # noqa: F401 (re-exported)

SOCAT = shutil.which("socat") or "/usr/bin/socat"


class SocatPair:
    """`socat` joining two raw ptys, linked as `<dir>/dev` and `<dir>/peer`."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dev = self.dir / "dev"
        self.peer = self.dir / "peer"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> "SocatPair":
        log = open(self.dir / "socat.log", "ab")
        self.proc = subprocess.Popen(
            [SOCAT, "-d", "-d", f"pty,raw,echo=0,link={self.dev}",
             f"pty,raw,echo=0,link={self.peer}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not (self.dev.exists() and self.peer.exists()):
            if self.proc.poll() is not None:
                raise AssertionError(f"socat exited with {self.proc.returncode}: "
                                     f"{(self.dir / 'socat.log').read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"socat links did not appear within {timeout} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, 15)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, 9)
            proc.wait()
        deadline = time.monotonic() + timeout
        while self.dev.is_symlink() or self.peer.is_symlink():
            assert time.monotonic() < deadline, "socat left its links behind"
            time.sleep(0.02)

    def open_peer(self) -> serial.Serial:
        return serial.Serial(str(self.peer), baudrate=9600, timeout=0.05)

    def __enter__(self) -> "SocatPair":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FakeScale:
    """An MT-SICS scale on the peer end: reads command lines, answers with `respond`.

    `respond(command)` returns the bytes to send back (terminator included) or
    None to stay silent. Every command received is kept in `commands`.
    """

    def __init__(self, pair: SocatPair, respond: Callable[[str], bytes | None]) -> None:
        self.respond = respond
        self.commands: list[str] = []
        self._port = pair.open_peer()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-scale", daemon=True)

    def _run(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            try:
                buffer += self._port.read(64)
            except (serial.SerialException, OSError):
                return  # socat went away: the cable is unplugged
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                command = line.decode("ascii", "replace")
                self.commands.append(command)
                answer = self.respond(command)
                if answer is not None:
                    try:
                        self._port.write(answer)
                    except (serial.SerialException, OSError):
                        return

    def __enter__(self) -> "FakeScale":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._port.close()


def scripted(*answers: bytes) -> Callable[[str], bytes | None]:
    """A responder giving `answers` in turn, then repeating the last one."""
    queue = list(answers)

    def respond(command: str) -> bytes | None:
        return queue.pop(0) if len(queue) > 1 else queue[0]
    return respond


class Stream:
    """Pulls a driver's batches in a background task (as the gateway does) into a queue."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.queue: asyncio.Queue[list[Sample]] = asyncio.Queue()
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        async for batch in self.driver.samples():
            await self.queue.put(batch)

    async def next(self, timeout: float = 8.0) -> list[Sample]:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def wait_open(self, timeout: float = 8.0) -> None:
        """Wait until the driver has the port open (pyserial flushes input on open)."""
        deadline = time.monotonic() + timeout
        while not self.driver.health.connected:
            assert time.monotonic() < deadline, "the driver did not open the port"
            assert not self.task.done(), "the sample stream ended"
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self.driver.stop()
        await asyncio.wait_for(self.task, 5)


def by_tag(batch: list[Sample]) -> dict[str, Sample]:
    return {s.tag: s for s in batch}
