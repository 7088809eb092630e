"""The blocking side of a serial instrument: one pyserial port in one worker thread.

This module owns the pyserial `Serial` object of one device and every
blocking call on it (open, write a command, read bytes into the line framer,
close), all run in a single dedicated worker thread so that calls on the port
never overlap and never occupy the event loop or the shared default executor.
Each call is bounded: the port is opened with a short read timeout (a "slice")
and callers loop against their own deadline; `cancel()` interrupts a read at
once (pyserial's cancel_read). Errors from the port (`PORT_ERRORS`) propagate
to the driver, which decides what they mean. It does not parse lines and
keeps no health figures.
"""
from __future__ import annotations

import asyncio
import os
import termios
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import serial

from drivers.serial.config import SerialDeviceConfig
from drivers.serial.framing import Line, LineFramer, Overflow

T = TypeVar("T")

#: what a failing port raises: pyserial's errors, OS errors, and termios errors from
#: the ioctls pyserial makes (a pty whose other end is gone answers EIO there)
PORT_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError,
                                                termios.error)

#: the longest one blocking read waits before the caller looks at its deadline again
READ_SLICE = 0.2


class PortGone(Exception):
    """The configured path does not exist (unplugged, or a by-id link not there yet)."""


class SerialPort:
    """One instrument's port, driven from asyncio through a one-thread executor."""

    def __init__(self, name: str, config: SerialDeviceConfig) -> None:
        self.config = config
        self.framer = LineFramer(config.terminator, config.max_line)
        self._serial: serial.Serial | None = None
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"serial-{name}")
        self._cancelled = False

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call on the port's own thread."""
        if self._executor is None:
            raise serial.SerialException("port is shut down")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- blocking calls (run on the port's thread) ----------------------------------------

    def open(self) -> None:
        cfg = self.config
        if not os.path.exists(cfg.port):
            raise PortGone(f"{cfg.port} does not exist (unplugged?)")
        self._serial = serial.Serial(
            port=cfg.port, baudrate=cfg.baudrate, bytesize=cfg.bytesize,
            parity=cfg.pyserial_parity, stopbits=cfg.stopbits,
            timeout=min(READ_SLICE, cfg.read_timeout), write_timeout=cfg.read_timeout,
            exclusive=True)
        self.framer.reset()

    def close(self) -> None:
        port, self._serial = self._serial, None
        self.framer.reset()
        if port is not None:
            try:
                port.close()
            except PORT_ERRORS:
                pass  # the device is already gone; the fd is released either way

    def read_events(self) -> tuple[list[Line | Overflow], int]:
        """Read what arrives within one read slice: the lines it completes, and its size."""
        port = self._require()
        data = port.read(1)
        if not data:
            return [], 0
        waiting = port.in_waiting
        if waiting:
            data += port.read(min(waiting, 65536))
        return self.framer.feed(data), len(data)

    def exchange(self, command: bytes, timeout: float) -> tuple[list[Line | Overflow], bool]:
        """Discard stale input, send `command`, and read until a non-empty line or `timeout`.

        Returns the framing events read and whether any byte arrived at all.
        """
        port = self._require()
        port.reset_input_buffer()
        self.framer.reset()
        port.write(command)
        return self.read_until_line(timeout)

    def read_until_line(self, timeout: float) -> tuple[list[Line | Overflow], bool]:
        port = self._require()
        deadline = time.monotonic() + timeout
        events: list[Line | Overflow] = []
        heard = False
        while time.monotonic() < deadline:
            if self._cancelled:
                break
            data = port.read(1)
            if not data:
                continue
            heard = True
            waiting = port.in_waiting
            if waiting:
                data += port.read(min(waiting, 65536))
            events += self.framer.feed(data)
            if any(isinstance(e, Overflow) or e.data.strip() for e in events):
                break
        return events, heard

    def write(self, data: bytes) -> None:
        self._require().write(data)

    def _require(self) -> serial.Serial:
        port = self._serial
        if port is None:
            raise serial.SerialException("port is not open")
        return port

    # -- from the event loop ------------------------------------------------------------

    def cancel(self) -> None:
        """Interrupt a read or write in progress (thread-safe, returns at once)."""
        self._cancelled = True
        port = self._serial
        if port is not None:
            for cancel in (port.cancel_read, port.cancel_write):
                try:
                    cancel()
                except (*PORT_ERRORS, AttributeError):
                    pass

    async def shutdown(self, timeout: float = 2.0) -> None:
        """Cancel any call in progress, close the port on its thread, end the thread."""
        if self._executor is None:
            return
        self.cancel()
        executor, self._executor = self._executor, None
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(executor, self.close), timeout)
        except asyncio.TimeoutError:
            pass  # a call that ignores cancel; the thread ends when it returns
        finally:
            executor.shutdown(wait=False)
