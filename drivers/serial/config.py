"""The typed configuration of one serial instrument (a scale or a barcode scanner).

This module owns parsing and validating a `[devices.<name>]` section whose
`type` is `serial` into a frozen dataclass, reporting every problem with its
full key path through `ConfigCollector`: the port and its line settings, the
line terminator (with backslash escapes such as `\\r\\n` decoded), and the
settings of the chosen parser (`scale`: MT-SICS command, poll or stream mode;
`scanner`: a regular expression with named groups). It does not open ports or
parse instrument lines.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from drivers.base import ConfigCollector

PARSERS: tuple[str, ...] = ("scale", "scanner")
MODES: tuple[str, ...] = ("poll", "stream")
#: config word -> pyserial's parity letter
PARITIES: dict[str, str] = {"none": "N", "even": "E", "odd": "O", "mark": "M", "space": "S"}
BYTESIZES: tuple[int, ...] = (5, 6, 7, 8)
STOPBITS: tuple[float, ...] = (1.0, 1.5, 2.0)
MAX_LINE_LIMIT = 65536

_COMMON_KEYS = {"type", "port", "baudrate", "bytesize", "parity", "stopbits", "terminator",
                "read_timeout", "parser", "machine", "max_line", "tag"}
_SCALE_KEYS = {"command", "mode", "poll_interval", "unit_tag"}
_SCANNER_KEYS = {"pattern"}
_TAG_NAME = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {"r": "\r", "n": "\n", "t": "\t", "0": "\0", "\\": "\\"}

DEFAULT_SCANNER_PATTERN = r"(?P<code>\S.*)"


class EscapeError(ValueError):
    """A backslash escape that `unescape` does not know."""


def unescape(text: str) -> str:
    r"""Decode `\r`, `\n`, `\t`, `\0`, `\\` and `\xHH` in `text` (other text unchanged).

    TOML basic strings already decode these, but a terminator typed into the
    web UI or a TOML literal string arrives as the two characters `\` `r`.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1:i + 2]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", text[i + 2:i + 4]):
            out.append(chr(int(text[i + 2:i + 4], 16)))
            i += 4
        else:
            raise EscapeError(f"unknown escape {text[i:i + 4]!r} "
                              "(known: \\r \\n \\t \\0 \\\\ \\xHH)")
    return "".join(out)


@dataclass(frozen=True)
class SerialDeviceConfig:
    """One serial instrument: where it is plugged in, how it talks, how its lines read."""

    port: str
    parser: str                      # "scale" | "scanner"
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "none"             # see PARITIES
    stopbits: float = 1.0
    terminator: bytes = b"\r\n"
    read_timeout: float = 2.0
    max_line: int = 256              # bytes; longer lines are discarded
    machine: str | None = None
    tag: str = "weight"              # scale: the weight tag; scanner: the code tag
    # scale only
    command: str | None = "SI"       # sent each poll; in stream mode sent once after opening
    mode: str = "poll"
    poll_interval: float = 1.0
    unit_tag: str = "unit"
    # scanner only
    pattern: str = DEFAULT_SCANNER_PATTERN

    @property
    def compiled_pattern(self) -> re.Pattern[str]:
        return re.compile(self.pattern)

    @property
    def tag_names(self) -> tuple[str, ...]:
        """The tags this instrument yields, in batch order (rules refer to them)."""
        if self.parser == "scale":
            return (self.tag, self.unit_tag)
        return (self.tag,) + tuple(g for g in self.compiled_pattern.groupindex if g != self.tag)

    @property
    def pyserial_parity(self) -> str:
        return PARITIES[self.parity]


def parse_device(section: dict[str, Any], path: str,
                 issues: ConfigCollector) -> SerialDeviceConfig | None:
    """Validate a device section; returns None when any problem was reported."""
    before = len(issues.issues)
    if not isinstance(section, dict):
        issues.add(path, f"must be a table, got {section!r}")
        return None
    parser = issues.get(section, path, "parser", str, required=True, choices=PARSERS)
    allowed = _COMMON_KEYS | _SCALE_KEYS | _SCANNER_KEYS
    issues.unknown_keys(section, path, allowed)
    if parser == "scale":
        _only_for(issues, section, path, _SCANNER_KEYS, "scanner")
    elif parser == "scanner":
        _only_for(issues, section, path, _SCALE_KEYS, "scale")
    issues.get(section, path, "type", str, choices=("serial",))
    port = issues.get(section, path, "port", str, required=True)
    if isinstance(port, str) and not port.strip():
        issues.add(f"{path}.port", "must not be empty")
    baudrate = issues.get(section, path, "baudrate", int, default=9600,
                          minimum=50, maximum=4_000_000)
    bytesize = issues.get(section, path, "bytesize", int, default=8, choices=BYTESIZES)
    parity = issues.get(section, path, "parity", str, default="none",
                        choices=tuple(PARITIES))
    stopbits = issues.get(section, path, "stopbits", float, default=1.0, choices=STOPBITS)
    terminator = _terminator(issues, section, path)
    read_timeout = _positive(issues, section, path, "read_timeout", 2.0)
    max_line = issues.get(section, path, "max_line", int, default=256,
                          minimum=8, maximum=MAX_LINE_LIMIT)
    machine = issues.get(section, path, "machine", str)
    default_tag = "code" if parser == "scanner" else "weight"
    tag = _tag_name(issues, section, path, "tag", default_tag)
    kwargs: dict[str, Any] = {}
    if parser == "scale":
        kwargs = _scale(issues, section, path, tag)
    elif parser == "scanner":
        kwargs = _scanner(issues, section, path, tag)
    if len(issues.issues) > before:
        return None
    return SerialDeviceConfig(port=port, parser=parser, baudrate=baudrate, bytesize=bytesize,
                              parity=parity, stopbits=stopbits, terminator=terminator,
                              read_timeout=read_timeout, max_line=max_line, machine=machine,
                              tag=tag, **kwargs)


def _only_for(issues: ConfigCollector, section: dict[str, Any], path: str,
              keys: set[str], parser: str) -> None:
    for key in sorted(keys & set(section)):
        issues.add(f"{path}.{key}", f"only applies to parser = \"{parser}\"")


def _scale(issues: ConfigCollector, section: dict[str, Any], path: str,
           tag: str) -> dict[str, Any]:
    mode = issues.get(section, path, "mode", str, default="poll", choices=MODES)
    command = issues.get(section, path, "command", str, default="SI" if mode == "poll" else None)
    if isinstance(command, str):
        if not command.strip():
            if mode == "poll":
                issues.add(f"{path}.command", "must not be empty in poll mode")
            command = None
        elif not command.isprintable() or not command.isascii():
            issues.add(f"{path}.command", f"must be printable ASCII, got {command!r}")
    poll_interval = _positive(issues, section, path, "poll_interval", 1.0)
    unit_tag = _tag_name(issues, section, path, "unit_tag", "unit")
    if unit_tag == tag:
        issues.add(f"{path}.unit_tag", f"must differ from tag {tag!r}")
    return {"mode": mode, "command": command, "poll_interval": poll_interval,
            "unit_tag": unit_tag}


def _scanner(issues: ConfigCollector, section: dict[str, Any], path: str,
             tag: str) -> dict[str, Any]:
    pattern = issues.get(section, path, "pattern", str, default=DEFAULT_SCANNER_PATTERN)
    if not isinstance(pattern, str):
        return {}
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        issues.add(f"{path}.pattern", f"is not a valid regular expression: {exc}")
        return {}
    for group in compiled.groupindex:
        if not _TAG_NAME.fullmatch(group):
            issues.add(f"{path}.pattern", f"group name {group!r} is not a valid tag name "
                                          "(letters, digits, '_' and '-')")
    if compiled.fullmatch("") is not None:
        issues.add(f"{path}.pattern", "must not match an empty line")
    return {"pattern": pattern, "command": None, "mode": "stream"}


def _terminator(issues: ConfigCollector, section: dict[str, Any], path: str) -> bytes:
    raw = issues.get(section, path, "terminator", str, default="\r\n")
    try:
        text = unescape(raw)
    except EscapeError as exc:
        issues.add(f"{path}.terminator", str(exc))
        return b"\r\n"
    if not text:
        issues.add(f"{path}.terminator", "must not be empty")
        return b"\r\n"
    if len(text) > 4 or not text.isascii():
        issues.add(f"{path}.terminator", f"must be 1 to 4 ASCII characters, got {raw!r}")
        return b"\r\n"
    return text.encode("ascii")


def _tag_name(issues: ConfigCollector, section: dict[str, Any], path: str, key: str,
              default: str) -> str:
    name = issues.get(section, path, key, str, default=default)
    if not _TAG_NAME.fullmatch(name):
        issues.add(f"{path}.{key}", "tag names may use only letters, digits, '_' and '-'")
        return default
    return name


def _positive(issues: ConfigCollector, section: dict[str, Any], path: str, key: str,
              default: float) -> float:
    value = issues.get(section, path, key, float, default=default)
    if not math.isfinite(value) or value <= 0:
        issues.add(f"{path}.{key}", f"must be a number > 0, got {value!r}")
        return default
    return value
