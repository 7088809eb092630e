"""Working time of the 'Standard 40 hours/week' calendar, as Odoo's resource module counts it.

Owns one question: how many working hours lie between two UTC datetimes for a
calendar in a given timezone (Monday to Friday, 08:00-12:00 and 13:00-17:00
local time).  The sandbox has no attendance editing: every calendar uses these
attendances, which are Odoo's default ones.  Used for the duration of
non-productive work center time logs.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

ATTENDANCES = ((8, 12), (13, 17))  # local hours, Monday..Friday


def work_hours(start_utc: datetime, end_utc: datetime, tz: str | None) -> float:
    """Hours of calendar working time inside [start_utc, end_utc] (naive datetimes are UTC)."""
    zone = ZoneInfo(tz or "UTC")
    start = start_utc.replace(tzinfo=timezone.utc)
    end = end_utc.replace(tzinfo=timezone.utc)
    if end <= start:
        return 0.0
    total = 0.0
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        if day.weekday() < 5:
            for h0, h1 in ATTENDANCES:
                a = datetime(day.year, day.month, day.day, h0, tzinfo=zone)
                b = datetime(day.year, day.month, day.day, h1, tzinfo=zone)
                lo, hi = max(a, start), min(b, end)
                if hi > lo:
                    total += (hi - lo).total_seconds() / 3600.0
        day += timedelta(days=1)
    return total
