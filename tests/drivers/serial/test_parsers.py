"""MT-SICS weight responses and scanner lines, and the samples they give."""
from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import Quality
from drivers.serial.parsers import (DYNAMIC, STABLE, ScaleError, UnexpectedLine, Weighing,
                                    parse_scan, parse_weighing, scan_samples, weighing_samples)


@pytest.mark.parametrize("line, expected", [
    ("S S     12.345 g", Weighing(STABLE, 12.345, "g")),
    ("S D     12.340 g", Weighing(DYNAMIC, 12.34, "g")),
    ("S S    -0.002 kg", Weighing(STABLE, -0.002, "kg")),
    ("S S -   1.5 lb", Weighing(STABLE, -1.5, "lb")),
    ("S S      100 ct", Weighing(STABLE, 100.0, "ct")),
    ("S S 0.5g", Weighing(STABLE, 0.5, "g")),
    ("S +", Weighing("overload")),
    ("S -", Weighing("underload")),
    ("S I", Weighing("busy")),
])
def test_mt_sics_weight_responses(line, expected):
    assert parse_weighing(line) == expected


@pytest.mark.parametrize("code, words", [("ES", "syntax error"), ("ET", "transmission error"),
                                         ("EL", "logical error")])
def test_error_responses_raise_naming_the_error(code, words):
    with pytest.raises(ScaleError, match=words) as err:
        parse_weighing(code)
    assert err.value.code == code


@pytest.mark.parametrize("line", ["", "S", "S S", "S S 12.3", "S X 1.0 g", "I4 A \"123\"",
                                  "S S 1.2.3 g", "S S abc g", "hello", "S S 1.0 g extra"])
def test_anything_else_is_unexpected(line):
    with pytest.raises(UnexpectedLine):
        parse_weighing(line)


@given(st.sampled_from("SD"), st.integers(min_value=-10**9, max_value=10**9),
       st.integers(min_value=0, max_value=5), st.integers(min_value=1, max_value=10),
       st.sampled_from(["g", "kg", "mg", "lb", "oz", "ct", "%"]))
def test_formatted_weights_parse_back(status, milli, decimals, width, unit):
    value = milli / 1000
    text = f"{value:.{decimals}f}"
    line = f"S {status}{' ' * width}{text} {unit}"
    w = parse_weighing(line)
    assert w.status == (STABLE if status == "S" else DYNAMIC)
    assert w.unit == unit
    assert math.isclose(w.value, float(text), abs_tol=1e-12)


@given(st.text(max_size=40))
def test_parse_weighing_never_raises_anything_unexpected(line):
    try:
        w = parse_weighing(line)
    except (ScaleError, UnexpectedLine):
        return
    assert w.status in {"stable", "dynamic", "overload", "underload", "busy"}
    assert w.value is None or math.isfinite(w.value)


def test_only_a_stable_weighing_gives_good_samples():
    good = weighing_samples("s1", "weight", "unit", Weighing(STABLE, 1.5, "kg"), 10.0)
    assert [(s.tag, s.value, s.quality, s.error) for s in good] == [
        ("weight", 1.5, Quality.GOOD, None), ("unit", "kg", Quality.GOOD, None)]
    for w, words in [(Weighing(DYNAMIC, 1.4, "kg"), "unstable weight (dynamic, 1.4 kg)"),
                     (Weighing("overload"), "overload"), (Weighing("underload"), "underload"),
                     (Weighing("busy"), "busy")]:
        samples = weighing_samples("s1", "weight", "unit", w, 10.0)
        assert all(s.quality is Quality.STALE and s.value is None for s in samples)
        assert all(words in s.error and s.error.startswith("device s1: ") for s in samples)


PATTERN = re.compile(r"^(?P<kind>B|L)(?P<code>[0-9A-Z]{6,20})$")


def test_scan_matches_the_whole_line_and_gives_its_groups():
    assert parse_scan("B123456", PATTERN) == {"kind": "B", "code": "123456"}
    assert parse_scan("X123456", PATTERN) is None
    assert parse_scan("B12345", PATTERN) is None
    assert parse_scan("B123456", re.compile(r"B\d+")) == {}
    assert parse_scan("B123456x", re.compile(r"B\d+")) is None  # the whole line must match
    assert parse_scan("7", re.compile(r"(?P<a>\d)(?P<b>x)?")) == {"a": "7", "b": ""}


def test_scan_samples_put_the_tag_first_from_its_group_or_the_whole_line():
    samples = scan_samples("sc", "code", "B123456", {"kind": "B", "code": "123456"}, 1.0)
    assert [(s.tag, s.value) for s in samples] == [("code", "123456"), ("kind", "B")]
    samples = scan_samples("sc", "code", "B123456", {"kind": "B"}, 1.0)
    assert [(s.tag, s.value) for s in samples] == [("code", "B123456"), ("kind", "B")]
    assert all(s.quality is Quality.GOOD and s.source_ts == 1.0 for s in samples)


@given(st.from_regex(PATTERN, fullmatch=True))
def test_every_line_the_pattern_accepts_gives_code_and_kind(line):
    groups = parse_scan(line, PATTERN)
    assert groups is not None and groups["kind"] + groups["code"] == line
