"""Read planning for the Modbus driver: coalescing tags into few requests.

This module owns turning a device's tags into the smallest list of read
requests the protocol allows: tags of the same function whose registers are at
most `max_gap` registers apart share one request, which never exceeds 125
registers. It does not perform the reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from drivers.modbus.config import MAX_READ_REGISTERS, TagConfig


@dataclass(frozen=True)
class ReadRequest:
    """One read request (function, start address, count) and the tags it serves."""

    function: str
    address: int
    count: int
    tags: tuple[TagConfig, ...]

    def registers_of(self, tag: TagConfig, registers: list[int]) -> list[int]:
        """The slice of this request's registers that belongs to `tag`."""
        start = tag.address - self.address
        return registers[start:start + tag.count]

    @property
    def tag_names(self) -> str:
        return ",".join(t.name for t in self.tags)


def plan_reads(tags: Iterable[TagConfig], max_gap: int,
               max_count: int = MAX_READ_REGISTERS) -> list[ReadRequest]:
    """Coalesce tags into read requests.

    Tags are grouped by function and sorted by address; a tag joins the current
    request when at most `max_gap` unused registers lie between it and the
    request's last register and the request stays within `max_count` registers.
    Overlapping tags share registers. The result is ordered by function, then address.
    """
    by_function: dict[str, list[TagConfig]] = {}
    for tag in tags:
        by_function.setdefault(tag.function, []).append(tag)
    requests: list[ReadRequest] = []
    for function in sorted(by_function):
        ordered = sorted(by_function[function], key=lambda t: (t.address, t.end, t.name))
        group: list[TagConfig] = []
        start = end = 0
        for tag in ordered:
            if group and tag.address - (end + 1) <= max_gap \
                    and max(end, tag.end) - start + 1 <= max_count:
                group.append(tag)
                end = max(end, tag.end)
                continue
            if group:
                requests.append(ReadRequest(function, start, end - start + 1, tuple(group)))
            group, start, end = [tag], tag.address, tag.end
        if group:
            requests.append(ReadRequest(function, start, end - start + 1, tuple(group)))
    return requests


def single_reads(tags: Iterable[TagConfig]) -> list[ReadRequest]:
    """One request per tag (used to find the bad tag after an exception response)."""
    return [ReadRequest(t.function, t.address, t.count, (t,)) for t in tags]
