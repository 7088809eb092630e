"""Line framing of a serial byte stream: bytes in, whole lines (or overflows) out.

This module owns cutting the bytes an instrument sends into lines at a
configured terminator, however the bytes arrive in chunks (a terminator may be
split across two reads), and the guard against garbage floods: a line longer
than `max_line` bytes is discarded whole and reported once as an `Overflow`,
and framing resumes after the next terminator. It also owns decoding a line to
text and rejecting bytes that are not clean text. It does no I/O and knows
nothing about scales or scanners.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    """One complete line, without its terminator."""

    data: bytes


@dataclass(frozen=True)
class Overflow:
    """A line longer than `max_line` bytes was discarded; `head` is its first (up to 32) bytes."""

    head: bytes


class GarbageLine(ValueError):
    """A line that is not clean text (not UTF-8, or with control characters)."""


class LineFramer:
    """Feeds on chunks of bytes and returns the lines they complete.

    The sequence of events does not depend on how the stream is chunked. A
    line (without terminator) longer than `max_line` bytes becomes one
    `Overflow` event, raised as soon as the line is known to be too long; its
    remaining bytes up to the next terminator are dropped silently.
    """

    def __init__(self, terminator: bytes, max_line: int) -> None:
        if not terminator:
            raise ValueError("terminator must not be empty")
        self.terminator = terminator
        self.max_line = max_line
        self._buffer = bytearray()
        self._discarding = False
        self._head = min(32, max_line + 1)  # bytes of a discarded line kept for the log

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished line held back (0 while discarding)."""
        return 0 if self._discarding else len(self._buffer)

    def reset(self) -> None:
        """Forget any partial line (after a reconnect or before a new command)."""
        self._buffer.clear()
        self._discarding = False

    def feed(self, data: bytes) -> list[Line | Overflow]:
        events: list[Line | Overflow] = []
        self._buffer += data
        term = self.terminator
        keep = len(term) - 1  # a terminator may be split across chunks
        while True:
            end = self._buffer.find(term)
            if end < 0:
                break
            line = bytes(self._buffer[:end])
            del self._buffer[:end + len(term)]
            if self._discarding:
                self._discarding = False
            elif len(line) > self.max_line:
                events.append(Overflow(line[:self._head]))
            else:
                events.append(Line(line))
        if self._discarding:
            if len(self._buffer) > keep:
                del self._buffer[:len(self._buffer) - keep]
        elif len(self._buffer) > self.max_line + keep:
            # no terminator can start inside the first max_line + 1 bytes: too long
            events.append(Overflow(bytes(self._buffer[:self._head])))
            self._discarding = True
            if len(self._buffer) > keep:
                del self._buffer[:len(self._buffer) - keep]
        return events


def decode_line(data: bytes) -> str:
    """The line as text, stripped of surrounding whitespace; `GarbageLine` when not clean.

    Clean text is UTF-8 without control characters other than tab (stray CR or
    LF around the line are whitespace and stripped first).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GarbageLine(f"not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") \
            from None
    text = text.strip()
    for i, ch in enumerate(text):
        if ch != "\t" and not ch.isprintable():
            raise GarbageLine(f"control character {ch!r} at offset {i}")
    return text


def preview(data: bytes, limit: int = 40) -> str:
    """A short, log-safe repr of raw bytes: `b'S S 1.0 g'` or `b'\\xff\\xfe'...(300 bytes)`."""
    if len(data) <= limit:
        return repr(data)
    return f"{data[:limit]!r}...({len(data)} bytes)"
