"""The last hour of each tag, in memory, for the console's trend chart.

It owns a fixed-size ring per numeric tag of one device: one bucket per `step`
seconds (default 10 s, 360 buckets for an hour) holding the bucket's first
time, its lowest, highest and last good value. A bucket is updated in place
while samples fall in it, so the cost per sample is a few comparisons, and the
memory is fixed at creation: 4 arrays of doubles per tag (11.5 KiB at the
defaults), allocated when a tag first shows a number, for at most `max_tags`
tags per device (the tags past it are counted in `dropped_tags`, not kept).
Nothing here is persisted: after a restart the chart starts empty, as the
values a person watches live do. Bad samples leave a gap; text values are not
trended; booleans count as 0 and 1.
"""
from __future__ import annotations

import math
from array import array
from typing import Any, Iterable

from drivers.base import Quality, Sample

WINDOW_S = 3600.0
STEP_S = 10.0
MAX_TAGS = 500


class Ring:
    """One tag's buckets: first time, low, high and last value, in a circle."""

    __slots__ = ("ts", "lo", "hi", "last", "head", "size", "bucket")

    def __init__(self, n: int) -> None:
        zeros = bytes(8 * n)
        self.ts, self.lo, self.hi, self.last = (array("d", zeros) for _ in range(4))
        self.head = -1        # the newest bucket's slot
        self.size = 0
        self.bucket = -1      # the newest bucket's number (time // step)

    def add(self, bucket: int, ts: float, value: float) -> None:
        if bucket == self.bucket:
            i = self.head
            if value < self.lo[i]:
                self.lo[i] = value
            elif value > self.hi[i]:
                self.hi[i] = value
            self.last[i] = value
            return
        if bucket < self.bucket:
            return            # a sample older than the newest bucket (a clock step back): not drawn
        n = len(self.ts)
        self.head = (self.head + 1) % n
        self.size = min(n, self.size + 1)
        self.bucket = bucket
        i = self.head
        self.ts[i], self.lo[i], self.hi[i], self.last[i] = ts, value, value, value

    def points(self, since: float) -> list[list[float]]:
        n = len(self.ts)
        out = []
        for k in range(self.size - 1, -1, -1):
            i = (self.head - k) % n
            if self.ts[i] >= since:
                out.append([self.ts[i], self.lo[i], self.hi[i], self.last[i]])
        return out


class Trend:
    """The rings of one device's tags."""

    def __init__(self, window: float = WINDOW_S, step: float = STEP_S, max_tags: int = MAX_TAGS) -> None:
        self.window, self.step, self.max_tags = window, step, max_tags
        self.n = max(1, int(math.ceil(window / step)))
        self.rings: dict[str, Ring] = {}
        self.dropped_tags = 0
        self._refused: set[str] = set()

    def add(self, samples: Iterable[Sample]) -> None:
        step = self.step
        for s in samples:
            if s.quality is not Quality.GOOD:
                continue
            v = s.value
            if isinstance(v, bool):
                v = float(v)
            elif not isinstance(v, (int, float)):
                continue
            v = float(v)
            if not math.isfinite(v):
                continue
            ring = self.rings.get(s.tag)
            if ring is None:
                if len(self.rings) >= self.max_tags:
                    if s.tag not in self._refused:
                        self._refused.add(s.tag)
                        self.dropped_tags += 1
                    continue
                ring = self.rings[s.tag] = Ring(self.n)
            ring.add(int(s.source_ts // step), s.source_ts, v)

    def series(self, tag: str, now: float) -> dict[str, Any] | None:
        """The tag's buckets of the last window, oldest first; None when the tag never showed a number."""
        ring = self.rings.get(tag)
        if ring is None:
            return None
        return {"tag": tag, "step_s": self.step, "window_s": self.window,
                "points": ring.points(now - self.window)}
