"""What the device itself says about its clock, its SSH server and its software, for the System page.

It owns reading live host state, never changing it: the gateway's own clock (the
page must not show the browser's), whether the kernel considers that clock
synchronized — which is true whatever keeps it (systemd-timesyncd, chrony, ntpd,
openntpd: each sets the kernel's sync status through adjtimex) — and which of
those daemons runs; whether an SSH server is running or listening, so the page
can tell the truth where the console does not manage SSH; and the version and
about facts. Everything here is read from the kernel (`adjtimex`, /proc) without
spawning a process, and costs the same at every call.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import socket
import struct
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PROC = Path("/proc")
#: process names (/proc/<pid>/comm, cut at 15 characters) of the daemons that keep the clock
TIME_DAEMONS = {"systemd-timesyn": "systemd-timesyncd", "chronyd": "chrony", "ntpd": "ntpd",
                "openntpd": "openntpd", "ptp4l": "linuxptp"}
SSH_DAEMONS = {"sshd", "dropbear"}
TIME_ERROR = 5          # adjtimex(2): the clock is not synchronized
STA_UNSYNC = 0x0040
SSH_PORT = 22


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def kernel_clock() -> dict[str, Any]:
    """The kernel's view of the clock: synchronized or not, and its estimated error (µs).

    `adjtimex` with `modes = 0` only reads; on 64-bit Linux `struct timex` starts
    `unsigned modes; long offset, freq, maxerror, esterror; int status`.
    """
    if _LIBC is None or not hasattr(_LIBC, "adjtimex") or struct.calcsize("l") != 8:
        return {"synchronized": None, "reason": "the kernel's clock state cannot be read on this platform"}
    buf = ctypes.create_string_buffer(512)          # larger than struct timex; zeroed: modes = 0, read only
    state = _LIBC.adjtimex(buf)
    if state < 0:
        return {"synchronized": None, "reason": f"adjtimex failed: {os.strerror(ctypes.get_errno())}"}
    maxerror, esterror, status = struct.unpack_from("llI", buf.raw, 24)
    synced = state != TIME_ERROR and not status & STA_UNSYNC
    return {"synchronized": synced, "esterror_us": esterror if synced else None,
            "maxerror_us": maxerror if synced else None}


def comms() -> set[str]:
    """The names (/proc/<pid>/comm) of the processes among the time and SSH daemons that run now:
    one pass over /proc for the whole System page."""
    wanted = set(TIME_DAEMONS) | SSH_DAEMONS
    found: set[str] = set()
    try:
        entries = list(os.scandir(PROC))
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            comm = (PROC / entry.name / "comm").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue      # gone meanwhile, or not ours to read
        if comm in wanted:
            found.add(comm)
    return found


def listening(port: int) -> bool:
    """Whether any TCP socket on this host listens on `port` (IPv4 or IPv6), as /proc/net says."""
    needle = f":{port:04X} "
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text(encoding="ascii", errors="replace").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A" and (fields[1] + " ").endswith(needle):
                return True
    return False


def clock(seen: set[str] | None = None) -> dict[str, Any]:
    """The gateway's own time, its zone, and whether (and by what) it is kept synchronized
    (`seen`: a `comms()` already taken)."""
    now = time.time()
    local = datetime.fromtimestamp(now).astimezone()
    offset = local.utcoffset()
    return {"now": now, "utc": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds"),
            "local": local.isoformat(timespec="seconds"), "zone": local.tzname() or "",
            "utc_offset_s": int(offset.total_seconds()) if offset is not None else 0,
            **kernel_clock(),
            "daemons": sorted({TIME_DAEMONS[c] for c in (comms() if seen is None else seen) if c in TIME_DAEMONS})}


def ssh(seen: set[str] | None = None) -> dict[str, Any]:
    """Whether an SSH server runs on this device or anything listens on port 22."""
    daemons = sorted((comms() if seen is None else seen) & SSH_DAEMONS)
    port = listening(SSH_PORT)
    return {"server_running": bool(daemons) or port, "daemons": daemons, "port_22_listening": port}


def about(version: str, gateway_id: str, started: float) -> dict[str, Any]:
    """Version and where it runs: what a support call asks first."""
    uname = platform.uname()
    return {"version": version, "gateway": gateway_id, "hostname": socket.gethostname(),
            "python": platform.python_version(), "implementation": sys.implementation.name,
            "os": f"{uname.system} {uname.release}", "machine": uname.machine,
            "started": started, "uptime_s": round(time.time() - started, 1), "pid": os.getpid()}
