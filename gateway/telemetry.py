"""Compact telemetry records: one signed record per poll, one timestamp, the values in tag order.

This module owns the telemetry encoding `values/1` and its decoding. A poll's
good samples become one `telemetry` record whose `data` is

    {"format": "values/1", "tagset": "<16 hex>", "values": [v0, v1, ...]}

with `ts` the newest sample's read time and `values[i]` the value of tag `i`
of the tag set (`null` when that tag had no good sample in this poll). The tag
set is published once per device and process start, whenever a new tag
appears and every ten minutes, as a `telemetry_tags` record (retained on the
broker):

    {"format": "values/1", "tagset": "<16 hex>", "tags": ["parts", "scrap", ...]}

`tagset` is the first 16 hex digits of SHA-256 over the JSON list of tag names,
so a consumer matches values to names without trusting the order of arrival.
Both records are ordinary signed envelopes (`linebridge verify` checks them and,
given the tags record, decodes the values). A poll that holds the same tag
more than once (an MQTT or file-drop burst) keeps every sample in the older
form, `{"samples": [{"tag", "value", "ts"}, ...]}`, so nothing is dropped.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Any, Iterable, Mapping

from drivers.base import Quality, Sample
from gateway.events import SCHEMA, event_id, iso_utc

FORMAT = "values/1"
KINDS = ("telemetry", "telemetry_tags")
#: the tags record again after this long (source time), in case an evicted or lost one left values undecodable
REPEAT_TAGS_S = 600.0


def tagset_id(tags: Iterable[str]) -> str:
    return hashlib.sha256(json.dumps(list(tags), separators=(",", ":")).encode("utf-8")).hexdigest()[:16]


def json_value(value: Any) -> Any:
    """A sample value as JSON can carry it (and the signature can cover it)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return str(value)


class Encoder:
    """Turns one device's polls into telemetry records; remembers its tag set."""

    def __init__(self, gateway: str, device: str, tags: Iterable[str] = ()) -> None:
        self.gateway, self.device = gateway, device
        self.tags: list[str] = list(dict.fromkeys(tags))
        self._index = {t: i for i, t in enumerate(self.tags)}
        self._tagset = tagset_id(self.tags)   # recomputed only when a tag joins, not every poll
        self._published: str | None = None
        self._published_at = 0.0
        self._epoch = f"{time.time():.6f}"   # a new tags record per process: the broker may have lost it

    def records(self, batch: list[Sample]) -> list[dict[str, Any]]:
        good = [s for s in batch if s.quality is Quality.GOOD]
        if not good:
            return []
        newest = max(s.source_ts for s in good)
        if len({s.tag for s in good}) < len(good):
            return [self._record(newest, {"samples": [{"tag": s.tag, "value": json_value(s.value),
                                                       "ts": iso_utc(s.source_ts)} for s in good]})]
        index = self._index
        for s in good:
            if s.tag not in index:
                index[s.tag] = len(self.tags)
                self.tags.append(s.tag)
                self._tagset = ""
        if not self._tagset:
            self._tagset = tagset_id(self.tags)
        tagset = self._tagset
        out = []
        if tagset != self._published or newest - self._published_at >= REPEAT_TAGS_S:
            out.append({"schema": SCHEMA, "id": event_id(self.gateway, f"{self.device}/telemetry_tags",
                                                         f"{tagset}/{self._epoch}/{newest:.6f}"),
                        "seq": None, "kind": "telemetry_tags", "ts": iso_utc(newest), "gateway": self.gateway,
                        "source": {"device": self.device},
                        "data": {"format": FORMAT, "tagset": tagset, "tags": list(self.tags)}, "context": {}})
            self._published, self._published_at = tagset, newest
        values: list[Any] = [None] * len(self.tags)
        for s in good:
            values[index[s.tag]] = json_value(s.value)
        out.append(self._record(newest, {"format": FORMAT, "tagset": tagset, "values": values}))
        return out

    def _record(self, newest: float, data: dict[str, Any]) -> dict[str, Any]:
        return {"schema": SCHEMA, "id": event_id(self.gateway, f"{self.device}/telemetry", f"{newest:.6f}"),
                "seq": None, "kind": "telemetry", "ts": iso_utc(newest), "gateway": self.gateway,
                "source": {"device": self.device}, "data": data, "context": {}}


def decode(record: Mapping[str, Any], tagsets: Mapping[str, list[str]]) -> list[tuple[str, Any]] | None:
    """(tag, value) pairs of a telemetry record; None when its tag set is not known yet.

    `tagsets` maps each tag set id to its names, as collected from `telemetry_tags` records.
    """
    data = record.get("data") or {}
    if "samples" in data:
        return [(s.get("tag"), s.get("value")) for s in data["samples"]]
    names = tagsets.get(data.get("tagset", ""))
    if names is None:
        return None
    return [(name, value) for name, value in zip(names, data.get("values") or []) if value is not None]
