"""The last log lines of the gateway process, kept in memory for the console's logs page.

A `logging.Handler` on the root logger with a bounded ring (2,000 lines by
default, each cut at 16 KiB: a traceback or a quoted payload can be long), so
the page never reads the journal or grows without bound; the journal (or
stderr) stays the durable log, whole.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any


#: characters kept of one line
LINE_LIMIT = 16 * 1024


class LogBuffer(logging.Handler):
    def __init__(self, capacity: int = 2000, line_limit: int = LINE_LIMIT) -> None:
        super().__init__(level=logging.INFO)
        self.line_limit = line_limit
        self.lines: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._seq = 0
        self._guard = threading.Lock()
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
        except Exception:  # a broken log call must not break the gateway
            message = str(record.msg)
        if len(message) > self.line_limit:
            message = f"{message[:self.line_limit]}… ({len(message) - self.line_limit} more characters in the journal)"
        with self._guard:
            self._seq += 1
            self.lines.append({"seq": self._seq, "ts": round(record.created, 3), "level": record.levelname,
                               "logger": record.name, "message": message})

    def tail(self, limit: int = 200, level: str | None = None, contains: str | None = None,
             after: int = 0) -> list[dict[str, Any]]:
        wanted = logging.getLevelName(level.upper()) if level else 0
        with self._guard:
            lines = list(self.lines)
        out = [ln for ln in lines if ln["seq"] > after
               and (not wanted or logging.getLevelName(ln["level"]) >= wanted)
               and (not contains or contains.lower() in ln["message"].lower())]
        return out[-limit:]

    def install(self) -> None:
        root = logging.getLogger()
        if self not in root.handlers:
            root.addHandler(self)

    def remove(self) -> None:
        logging.getLogger().removeHandler(self)
