"""Durable, atomic replacement of small files: configuration, accounts, keys, settings.

One way for every file the gateway rewrites whole: the new content goes to a
temporary file beside the target, is fsynced, renamed over the target and the
directory is fsynced, so a crash or power cut leaves either the old file or the
new one, never a mix, and the rename survives. The target's real path is used,
so a file reached through a link (the image's /etc/linebridge points to the
data partition) is replaced where it lives.
"""
from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: Path | str, data: bytes | str, mode: int = 0o600) -> None:
    """Replace `path` with `data` (str is written as UTF-8) durably; the file gets `mode`
    whatever the process's umask."""
    target = Path(os.path.realpath(path))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, target)
    dfd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
