"""The record rule: each sample of a tag is one business record, such as a row of a vendor table.

It owns what one record's cell means when a source already holds business
records (a production log in an MES database: a row per cycle with its good
and scrapped parts, a row per stop with its duration) rather than a running
machine counter:

- `kind = "production"` / `"scrap"`: the cell is the quantity of one event;
- `kind = "consumption"`: the quantity of the rule's `material` (in `unit`);
- `kind = "downtime"`: the cell is a stop's duration in seconds, ending at the
  record's time: a `downtime_start` (with the rule's `code`) at the record's
  time minus the duration and the `downtime_end` that names it.

A cell of 0 gives nothing. A good cell that is not a finite number >= 0, or
is above `max_quantity` (default 1e6) or, for a stop, `max_duration` (default
7 days), is refused, and a cell the driver could not read (a bad-quality sample that
names its record in `origin`, e.g. `table production key id=17 column
'good_qty'`: NULL, text, overflow) is quarantined: both become `implausible`
events, which the sinks hold as dead letters naming the record and the
column, and the next records flow. Those events carry `record: true`, so the
pipeline stores each one (a bad row is not a repeat of the previous bad row).
A bad sample without an origin (a device that did not answer) changes nothing.

Stateless and pure over the sample. Event ids derive from the source, the rule
and the record's origin (the row's key) when the sample has one, else its
source time in ms: the same row read again after a crash makes the same ids,
which the store's intake dedupe drops.
"""
from __future__ import annotations

import math
from typing import Any

from drivers.base import Quality, Sample
from gateway.events import Event, iso_utc
from gateway.rules.base import TagRule
from gateway.rules.config import RecordRuleConfig
from gateway.rules.plausible import describe, raw_value


class RecordRule(TagRule):
    """One configured record rule; `apply` is pure over the sample and keeps no state."""

    cfg: RecordRuleConfig

    def load_state(self, raw: bytes | None) -> None:
        return None

    def apply(self, state: None, sample: Sample) -> tuple[list[Event], None]:
        key = f"{self.cfg.name}:{sample.origin or int(sample.source_ts * 1000)}"
        if sample.quality is not Quality.GOOD:
            if sample.origin is None:
                return [], None
            reason = (sample.error or sample.quality.value).removeprefix(f"{sample.origin}: ")
            return [self._quarantine(sample, key, reason)], None
        value = sample.value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value < 0:
            what = "a duration in seconds" if self.cfg.kind == "downtime" else "a quantity"
            return [self._quarantine(sample, key, f"{describe(value)} is not {what} (a finite number >= 0)")], None
        if value == 0:
            return [], None
        ts, cfg = sample.source_ts, self.cfg
        limit, name = ((cfg.max_duration, "max_duration") if cfg.kind == "downtime"
                       else (cfg.max_quantity, "max_quantity"))
        if value > limit:
            return [self._quarantine(sample, key, f"{describe(value)} is above {name} = {limit:g}")], None
        data: dict[str, Any] = {"quantity": value}
        if sample.origin:
            data["origin"] = sample.origin
        if cfg.kind == "consumption":
            data.update(material=cfg.material, unit=cfg.unit)
        if cfg.kind != "downtime":
            return [self._event(cfg.kind, key, ts, data)], None
        begun = ts - value
        start = self._event("downtime_start", f"start:{key}", begun,
                            {"code": cfg.code or 0, **({"origin": sample.origin} if sample.origin else {})})
        end = self._event("downtime_end", f"end:{key}", ts, {
            "code": cfg.code or 0, "start_event_id": start.id, "started": iso_utc(begun),
            "duration_s": round(value, 3), **({"origin": sample.origin} if sample.origin else {})})
        return [start, end], None

    def _quarantine(self, sample: Sample, key: str, reason: str) -> Event:
        data: dict[str, Any] = {"reason": reason, "raw": raw_value(sample.value), "rule": self.cfg.name,
                                "record": True}
        if sample.origin:
            data["origin"] = sample.origin
        return self._event("implausible", f"implausible:{key}", sample.source_ts, data)
