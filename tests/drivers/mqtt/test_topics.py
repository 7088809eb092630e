"""MQTT topic filter rules: validation, matching, and overlap between two filters."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.mqtt.topics import filter_problem, matches, overlap


@pytest.mark.parametrize("topic_filter", [
    "plant/cnc01/state", "plant/+/state", "plant/#", "#", "+", "+/+", "a//b", "/leading",
    "$SYS/broker/uptime"])
def test_valid_filters_are_accepted(topic_filter):
    assert filter_problem(topic_filter) is None


@pytest.mark.parametrize("topic_filter, problem", [
    ("", "must not be empty"),
    ("plant/#/state", "'#' must be a whole level and the last one"),
    ("plant/cnc#", "'#' must be a whole level and the last one"),
    ("plant/cnc+/state", "'+' must be a whole level"),
    ("plant/\x00", "NUL"),
    ("$share/group/plant/#", "shared subscriptions"),
])
def test_invalid_filters_are_refused_with_the_reason(topic_filter, problem):
    assert problem in filter_problem(topic_filter)


@pytest.mark.parametrize("topic_filter, topic, expected", [
    ("plant/+/state", "plant/cnc01/state", True),
    ("plant/+/state", "plant/cnc01/x/state", False),
    ("plant/+/state", "plant//state", True),           # an empty level is a level
    ("plant/#", "plant", True),                         # '#' includes the parent
    ("plant/#", "plant/a/b/c", True),
    ("plant/#", "plants/a", False),
    ("#", "$SYS/broker/uptime", False),                 # wildcards do not reach '$' topics
    ("+/broker/uptime", "$SYS/broker/uptime", False),
    ("$SYS/#", "$SYS/broker/uptime", True),
    ("plant/cnc01", "plant/cnc01/state", False),
])
def test_matching_follows_the_mqtt_rules(topic_filter, topic, expected):
    assert matches(topic_filter, topic) is expected


@pytest.mark.parametrize("a, b, expected", [
    ("plant/+/state", "plant/cnc01/state", True),
    ("plant/+/state", "plant/cnc01/alarm", False),
    ("plant/#", "plant", True),
    ("plant/#", "plant/a/b", True),
    ("plant/a", "plant/a/b", False),
    ("+/a", "b/+", True),
    ("#", "$SYS/x", False),
    ("a/+/c", "a/b", False),
])
def test_overlap_finds_filters_that_can_match_one_topic(a, b, expected):
    assert overlap(a, b) is expected and overlap(b, a) is expected


_LEVEL = st.sampled_from(["a", "b", "", "$x"])
_FILTER_LEVEL = st.sampled_from(["a", "b", "", "+", "#"])


def _filter(levels):
    if "#" in levels:
        levels = levels[:levels.index("#") + 1]
    return "/".join(levels)


@settings(max_examples=300, deadline=None)
@given(st.lists(_FILTER_LEVEL, min_size=1, max_size=4),
       st.lists(_FILTER_LEVEL, min_size=1, max_size=4),
       st.lists(_LEVEL, min_size=1, max_size=5))
def test_filters_said_not_to_overlap_never_match_the_same_topic(a_levels, b_levels, t_levels):
    a, b, topic = _filter(a_levels), _filter(b_levels), "/".join(t_levels)
    if matches(a, topic) and matches(b, topic):
        assert overlap(a, b)


def _witness(a, b):
    """A concrete topic both filters match, built level by level."""
    a_levels, b_levels, out = a.split("/"), b.split("/"), []
    for i in range(max(len(a_levels), len(b_levels))):
        x = a_levels[i] if i < len(a_levels) else None
        y = b_levels[i] if i < len(b_levels) else None
        if x == "#" or y == "#":
            rest = (b_levels if x == "#" else a_levels)[i:]
            out += ["w" if level == "+" else level for level in rest if level != "#"]
            break
        out.append(y if x == "+" and y != "+" else "w" if x == "+" else x)
    return "/".join(out)


@settings(max_examples=300, deadline=None)
@given(st.lists(_FILTER_LEVEL, min_size=1, max_size=4),
       st.lists(_FILTER_LEVEL, min_size=1, max_size=4))
def test_filters_said_to_overlap_share_a_topic(a_levels, b_levels):
    a, b = _filter(a_levels), _filter(b_levels)
    if overlap(a, b):
        topic = _witness(a, b)
        assert matches(a, topic) and matches(b, topic), (a, b, topic)
