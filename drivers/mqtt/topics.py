"""MQTT topic filters: validation, matching a concrete topic, and overlap between filters.

This module owns the rules of MQTT 3.1.1 topic filters (section 4.7): `+`
stands for exactly one level, `#` for any number of trailing levels and must be
the last level, wildcards occupy a whole level, and filters starting with a
wildcard do not match topics starting with `$`. It also decides whether two
filters could both match one topic, so the configuration can refuse
subscriptions that would map one message twice. It knows nothing about
payloads or connections.
"""
from __future__ import annotations

MAX_TOPIC_BYTES = 65535


def filter_problem(topic_filter: str) -> str | None:
    """Why `topic_filter` is not a valid subscription filter, or None when it is."""
    if not topic_filter:
        return "must not be empty"
    if "\x00" in topic_filter:
        return "must not contain a NUL character"
    if len(topic_filter.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        return f"must be at most {MAX_TOPIC_BYTES} bytes"
    if topic_filter.startswith("$share/") or topic_filter.startswith("$queue/"):
        return "shared subscriptions ($share/, $queue/) are not supported"
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level and the last one (as in 'plant/#')"
        if "+" in level and level != "+":
            return "'+' must be a whole level (as in 'plant/+/state')"
    return None


def is_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


def matches(topic_filter: str, topic: str) -> bool:
    """Whether the concrete `topic` (no wildcards) matches `topic_filter`."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for i, f in enumerate(f_levels):
        if f == "#":
            return True  # also matches the parent level: 'a/#' matches 'a'
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


def overlap(a: str, b: str) -> bool:
    """Whether some concrete topic would match both filters (both assumed valid)."""
    if a[:1] in ("+", "#") and b.startswith("$") or b[:1] in ("+", "#") and a.startswith("$"):
        return False
    a_levels, b_levels = a.split("/"), b.split("/")
    for x, y in zip(a_levels, b_levels):
        if x == "#" or y == "#":
            return True
        if x != "+" and y != "+" and x != y:
            return False
    if len(a_levels) == len(b_levels):
        return True
    longer = a_levels if len(a_levels) > len(b_levels) else b_levels
    # 'a/#' also matches 'a', so 'a' and 'a/#' overlap
    return len(longer) == min(len(a_levels), len(b_levels)) + 1 and longer[-1] == "#"
