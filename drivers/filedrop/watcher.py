"""Which files in the watched folder are ready to take, and moving them out of it.

This module owns looking at the folder (only regular files directly in it
whose names match `pattern` and none of `ignore`), deciding when a file is
finished being written (its size, mtime and inode unchanged for
`stable_seconds` of our own clock, or unchanged since the last look with an
mtime already `stable_seconds` old, as for a file renamed in whole), and
moving a file into `processed/` or `quarantine/` under a name that never
overwrites an earlier one. All calls block: the driver runs them in a thread.
It does not read file contents.
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from drivers.filedrop.config import FileDropConfig


@dataclass(frozen=True)
class Signature:
    """What changes when a file is written to (or replaced)."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> "Signature":
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9


@dataclass(frozen=True)
class Candidate:
    """A file that looks finished: its path and its signature when it was judged so."""

    path: Path
    signature: Signature

    @property
    def name(self) -> str:
        return self.path.name


class Watcher:
    """Looks at the folder each poll and tells which files have stopped changing."""

    def __init__(self, cfg: FileDropConfig, clock: Callable[[], float],
                 monotonic: Callable[[], float]) -> None:
        self.cfg = cfg
        self.directory = Path(cfg.directory)
        self._clock, self._monotonic = clock, monotonic
        self._seen: dict[str, tuple[Signature, float]] = {}  # name -> (signature, since)
        #: how many times each waiting file was looked at (for the status page and tests)
        self.looks: dict[str, int] = {}
        #: folder scans done
        self.scans = 0

    def wanted(self, name: str) -> bool:
        return (fnmatch.fnmatchcase(name, self.cfg.pattern)
                and not any(fnmatch.fnmatchcase(name, p) for p in self.cfg.ignore))

    def scan(self) -> list[Candidate]:
        """Files ready to take, oldest first; raises OSError when the folder is unreadable."""
        now, clock_now = self._monotonic(), self._clock()
        ready: list[Candidate] = []
        present: set[str] = set()
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if not self.wanted(entry.name):
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    signature = Signature.of(entry.stat(follow_symlinks=False))
                except FileNotFoundError:
                    continue  # gone between listing and stat
                present.add(entry.name)
                self.looks[entry.name] = self.looks.get(entry.name, 0) + 1
                previous = self._seen.get(entry.name)
                if previous is None or previous[0] != signature:
                    self._seen[entry.name] = (signature, now)
                    if previous is None and self.cfg.stable_seconds == 0:
                        ready.append(Candidate(Path(entry.path), signature))
                    continue
                since = previous[1]
                if (now - since >= self.cfg.stable_seconds
                        or clock_now - signature.mtime >= self.cfg.stable_seconds):
                    ready.append(Candidate(Path(entry.path), signature))
        self.scans += 1
        for name in set(self._seen) - present:
            del self._seen[name]
            self.looks.pop(name, None)
        ready.sort(key=lambda c: (c.signature.mtime_ns, c.name))
        return ready

    def forget(self, name: str) -> None:
        """The file left the folder (taken or quarantined)."""
        self._seen.pop(name, None)
        self.looks.pop(name, None)


def current_signature(path: Path) -> Signature | None:
    try:
        return Signature.of(os.stat(path, follow_symlinks=False))
    except FileNotFoundError:
        return None


def move_into(path: Path, subdir: str) -> Path:
    """Move `path` into `<its folder>/<subdir>/`, keeping its name unless one is taken there.

    `export.csv` becomes `processed/export.csv`, or `processed/export.1.csv` if
    that exists, and so on. The same file system, so the move is a rename.
    """
    target_dir = path.parent / subdir
    target_dir.mkdir(exist_ok=True)
    target = free_name(target_dir, path.name)
    os.rename(path, target)
    return target


def free_name(directory: Path, name: str, extra_suffix: str = "") -> Path:
    """A path in `directory` for `name` that exists neither as is nor with `extra_suffix`."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    n = 0
    while True:
        candidate = name if n == 0 else (f"{stem}.{n}.{ext}" if ext else f"{stem}.{n}")
        target = directory / candidate
        if not target.exists() and not (extra_suffix and
                                        (directory / (candidate + extra_suffix)).exists()):
            return target
        n += 1


def quarantine_file(path: Path, subdir: str, reason: str) -> Path:
    """Write `<name>.reason.txt` into `<folder>/<subdir>/`, then move the file beside it.

    The reason is written first (atomically), so a file in quarantine always
    has its reason; after a crash in between, the file is simply judged again.
    """
    target_dir = path.parent / subdir
    target_dir.mkdir(exist_ok=True)
    target = free_name(target_dir, path.name, extra_suffix=".reason.txt")
    reason_path = target.with_name(target.name + ".reason.txt")
    tmp = reason_path.with_name(reason_path.name + ".tmp")
    tmp.write_text(reason, encoding="utf-8")
    os.replace(tmp, reason_path)
    os.rename(path, target)
    return target
