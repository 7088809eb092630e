"""What an instrument's line means: MT-SICS scale responses and barcode scans.

This module owns two pure parsers and how their results become samples.
`parse_weighing` reads a Mettler-Toledo MT-SICS response (`S S      12.345 g`
stable, `S D ...` dynamic, `S +`/`S -` overload/underload, `S I` busy,
`ES`/`ET`/`EL` errors). `parse_scan` matches a scanned line against the
configured regular expression. `weighing_samples` and `scan_samples` turn the
results into `Sample`s, never inventing a value: only a stable weighing and a
matching scan give `good` samples. It does no I/O and keeps no state.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from drivers.base import Quality, Sample

STABLE, DYNAMIC = "stable", "dynamic"
OVERLOAD, UNDERLOAD, BUSY = "overload", "underload", "busy"

#: MT-SICS error responses, in the words of the MT-SICS reference manual
ERROR_RESPONSES: dict[str, str] = {
    "ES": "syntax error (ES): the scale did not recognise the command",
    "ET": "transmission error (ET): the scale received a faulty command (parity or break)",
    "EL": "logical error (EL): the scale cannot execute the command",
}
_STATUS_ONLY = {"+": OVERLOAD, "-": UNDERLOAD, "I": BUSY}

_WEIGHT = re.compile(
    r"S\s+(?P<status>[SD])\s+(?P<sign>[-+]?)\s*(?P<number>\d+(?:\.\d*)?|\.\d+)"
    r"\s*(?P<unit>[^\s\d.+-]\S{0,7})")
_STATUS = re.compile(r"S\s+(?P<status>[-+I])")


class UnexpectedLine(ValueError):
    """A line that is not a response this parser knows."""


@dataclass(frozen=True)
class Weighing:
    """One scale response: `status` is stable, dynamic, overload, underload or busy."""

    status: str
    value: float | None = None
    unit: str | None = None


class ScaleError(Exception):
    """The scale answered with an MT-SICS error response (ES, ET, EL)."""

    def __init__(self, code: str) -> None:
        super().__init__(ERROR_RESPONSES[code])
        self.code = code


def parse_weighing(line: str) -> Weighing:
    """Parse one MT-SICS weight response line (already stripped of its terminator).

    Raises `ScaleError` for an error response and `UnexpectedLine` for anything
    that is not a weight response.
    """
    text = line.strip()
    if text in ERROR_RESPONSES:
        raise ScaleError(text)
    m = _WEIGHT.fullmatch(text)
    if m is not None:
        value = float(m["number"])
        if m["sign"] == "-":
            value = -value
        if not math.isfinite(value):
            raise UnexpectedLine(f"weight out of range in {text!r}")
        return Weighing(STABLE if m["status"] == "S" else DYNAMIC, value + 0.0, m["unit"])
    m = _STATUS.fullmatch(text)
    if m is not None:
        return Weighing(_STATUS_ONLY[m["status"]])
    raise UnexpectedLine(f"not an MT-SICS weight response: {text[:60]!r}")


def parse_scan(line: str, pattern: re.Pattern[str]) -> dict[str, str] | None:
    """The named groups of a scanned line that fully matches `pattern`, else None.

    A group that did not take part in the match is given as "". With no named
    groups the result is empty (the caller uses the whole line).
    """
    m = pattern.fullmatch(line)
    if m is None:
        return None
    return {name: value or "" for name, value in m.groupdict().items()}


def weighing_samples(device: str, tag: str, unit_tag: str, weighing: Weighing,
                     ts: float) -> list[Sample]:
    """The weight and unit samples of one response; only a stable weighing is good.

    A dynamic (unstable) weighing is `stale`: the scale was still settling and
    its number is not trusted, so the value is None. Overload, underload and
    busy are `stale` too, with the reason as the error.
    """
    if weighing.status == STABLE:
        return [Sample(device, tag, weighing.value, Quality.GOOD, ts),
                Sample(device, unit_tag, weighing.unit, Quality.GOOD, ts)]
    if weighing.status == DYNAMIC:
        error = (f"device {device}: unstable weight (dynamic, {weighing.value:g} "
                 f"{weighing.unit}): not trusted")
    elif weighing.status == BUSY:
        error = f"device {device}: scale busy (S I): command not executable now"
    else:
        error = f"device {device}: {weighing.status}"
    return bad_samples(device, (tag, unit_tag), Quality.STALE, error, ts)


def scan_samples(device: str, tag: str, line: str, groups: dict[str, str],
                 ts: float) -> list[Sample]:
    """The samples of one matching scan: `tag` first, then each other named group.

    `tag` carries the group of the same name when the pattern has one, else the
    whole line.
    """
    out = [Sample(device, tag, groups.get(tag, line), Quality.GOOD, ts)]
    out += [Sample(device, name, value, Quality.GOOD, ts)
            for name, value in groups.items() if name != tag]
    return out


def bad_samples(device: str, tags: tuple[str, ...] | list[str], quality: Quality, error: str,
                ts: float) -> list[Sample]:
    return [Sample(device, t, None, quality, ts, error) for t in tags]
