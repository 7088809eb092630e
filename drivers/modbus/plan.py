"""Read planning for the Modbus driver: coalescing tags into few requests.

This module owns turning a device's tags into the smallest list of read
requests the protocol allows: tags of the same function whose registers (or
bits) are at most `max_gap` (`max_bit_gap`) apart share one request, which
never exceeds 125 registers (`max_count`) or 2000 bits (`max_bits`). It does
not perform the reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence, TypeVar

from drivers.modbus.config import MAX_READ_BITS, MAX_READ_REGISTERS
from drivers.modbus.tags import BIT_FUNCTIONS, TagConfig

V = TypeVar("V")


@dataclass(frozen=True)
class ReadRequest:
    """One read request (function, start address, count) and the tags it serves.

    For coils and discrete inputs, `address` and `count` are in bits.
    """

    function: str
    address: int
    count: int
    tags: tuple[TagConfig, ...]

    def registers_of(self, tag: TagConfig, values: Sequence[V]) -> list[V]:
        """The slice of this request's registers (or bits) that belongs to `tag`."""
        start = tag.address - self.address
        return list(values[start:start + tag.count])

    @property
    def tag_names(self) -> str:
        return ",".join(t.name for t in self.tags)

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.function, self.address, self.count)


def plan_reads(tags: Iterable[TagConfig], max_gap: int,
               max_count: int = MAX_READ_REGISTERS, *, max_bit_gap: int = 32,
               max_bits: int = MAX_READ_BITS) -> list[ReadRequest]:
    """Coalesce tags into read requests.

    Tags are grouped by function and sorted by address; a tag joins the current
    request when at most `max_gap` unused registers (`max_bit_gap` unused bits
    for coils and discrete inputs) lie between it and the request's last
    register and the request stays within `max_count` registers (`max_bits`
    bits). Overlapping tags share registers. The result is ordered by function,
    then address.
    """
    by_function: dict[str, list[TagConfig]] = {}
    for tag in tags:
        by_function.setdefault(tag.function, []).append(tag)
    requests: list[ReadRequest] = []
    for function in sorted(by_function):
        gap, limit = ((max_bit_gap, max_bits) if function in BIT_FUNCTIONS
                      else (max_gap, max_count))
        ordered = sorted(by_function[function], key=lambda t: (t.address, t.end, t.name))
        group: list[TagConfig] = []
        start = end = 0
        for tag in ordered:
            if group and tag.address - (end + 1) <= gap \
                    and max(end, tag.end) - start + 1 <= limit:
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
