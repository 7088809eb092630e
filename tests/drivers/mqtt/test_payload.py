"""Payload decoding, dotted paths, strict type conversion, timestamps and message mapping."""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import Quality
from drivers.mqtt.payload import (MAX_PAYLOAD_BYTES, FieldError, FieldMapping, PayloadError,
                                  convert, decode_payload, lookup, map_message, parse_timestamp)

DOC = {"counters": {"good": 12, "0": "zero-key"}, "axes": [{"load": 1.5}, {"load": 2.5}],
       "empty": [], "flag": None}


@pytest.mark.parametrize("path, expected", [
    (("counters", "good"), 12),
    (("axes", "1", "load"), 2.5),
    (("counters", "0"), "zero-key"),     # in an object a digit is a key
    ((), DOC),
])
def test_lookup_walks_objects_and_list_indexes(path, expected):
    assert lookup(DOC, path) == expected


@pytest.mark.parametrize("path, message", [
    (("counters", "bad"), "no key 'bad' in counters"),
    (("missing",), "no key 'missing' in the payload"),
    (("axes", "2", "load"), "axes has 2 item(s), no index 2"),
    (("axes", "x"), "axes is a list, 'x' is not an index"),
    (("axes", "-1"), "axes is a list, '-1' is not an index"),
    (("counters", "good", "deeper"), "counters.good is 12, cannot look up 'deeper'"),
])
def test_lookup_says_where_the_path_stops(path, message):
    with pytest.raises(FieldError, match=None) as err:
        lookup(DOC, path)
    assert str(err.value) == message


@pytest.mark.parametrize("value, kind, expected", [
    (7, "int", 7), (7.0, "int", 7), ("-42", "int", -42), (" 8 ", "int", 8),
    (7, "float", 7.0), ("2.5e3", "float", 2500.0), (".5", "float", 0.5),
    (True, "bool", True), (0, "bool", False), ("ON", "bool", True), ("false", "bool", False),
    ("abc", "str", "abc"), (4711, "str", "4711"), (2.5, "str", "2.5"),
    (5, None, 5), ("x", None, "x"), (False, None, False),
])
def test_strict_conversion_accepts_unambiguous_values(value, kind, expected):
    result = convert(value, kind)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("value, kind, message", [
    (7.5, "int", "expected int, got 7.5"),
    ("7.0", "int", "expected int, got '7.0'"),
    ("12abc", "int", "expected int, got '12abc'"),
    (True, "int", "expected int, got true"),
    ("1_000", "float", "expected float, got '1_000'"),
    ("nan", "float", "expected float, got 'nan'"),
    (False, "float", "expected float, got false"),
    (1e400, "float", "expected a finite float"),
    (2, "bool", "expected bool"),
    ("yes", "bool", "expected bool"),
    (True, "str", "expected str, got true"),
    ({"a": 1}, "str", "expected str, got an object"),
    (None, "int", "value is null"),
    (None, None, "value is null"),
    ([1, 2], None, "value is a list, map a single value"),
    ({"a": 1}, None, "value is an object"),
])
def test_strict_conversion_refuses_everything_else(value, kind, message):
    with pytest.raises(FieldError) as err:
        convert(value, kind)
    assert message in str(err.value)


@given(st.integers(min_value=-2**63, max_value=2**63 - 1))
def test_any_integer_survives_json_and_int_conversion(number):
    assert convert(lookup(decode_payload(json.dumps({"v": number}).encode(), "json"), ("v",)),
                   "int") == number


@pytest.mark.parametrize("value, unit, expected", [
    (1714557600, "auto", 1714557600.0),
    (1714557600.5, "auto", 1714557600.5),
    (1714557600250, "auto", 1714557600.25),          # large numbers are milliseconds
    (1714557600, "ms", 1714557.6),
    (1714557600, "s", 1714557600.0),
    ("2024-05-01T10:00:00Z", "auto", 1714557600.0),
    ("2024-05-01T12:00:00+02:00", "auto", 1714557600.0),
    ("2024-05-01T10:00:00", "auto", 1714557600.0),    # no offset: UTC
    ("2024-05-01 10:00:00.250", "auto", 1714557600.25),
])
def test_timestamps_in_epoch_seconds_milliseconds_or_iso_8601(value, unit, expected):
    assert parse_timestamp(value, unit) == pytest.approx(expected)


@pytest.mark.parametrize("value, unit", [(1714557600250, "s"), (9e18, "ms"), ("0001-01-01T00:00:00Z", "auto"),
                                         (10 ** 400, "auto")])
def test_a_timestamp_no_event_can_carry_is_refused(value, unit):
    """1714557600250 read as seconds is the year 56302: the rules' UTC time raised ValueError on it;
    a 400-digit number raised OverflowError out of the mapping (found by fuzzing)."""
    with pytest.raises(FieldError, match="timestamp"):
        parse_timestamp(value, unit)


@pytest.mark.parametrize("payload, kind", [(b'{"v": 99999999999999999999999}', "int"),
                                           (b'{"v": 99999999999999999999999}', None),
                                           (b'{"v": "-9223372036854775809"}', "int"),
                                           (b'{"v": "' + b"9" * 5000 + b'"}', "int")])
def test_an_integer_beyond_64_bits_is_refused_not_passed_on(payload, kind):
    with pytest.raises(FieldError, match="out of range"):
        convert(lookup(decode_payload(payload, "json"), ("v",)), kind)


def test_an_integer_too_large_for_a_float_is_refused_as_a_float():
    """float(10**400) raised OverflowError out of the payload mapping."""
    with pytest.raises(FieldError, match="finite float"):
        convert(10 ** 400, "float")


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00", True, None, -5,
                                   [1714557600], float("inf")])
def test_unreadable_timestamps_are_refused(value):
    with pytest.raises(FieldError):
        parse_timestamp(value)


@pytest.mark.parametrize("payload, message", [
    (b"{not json", "not valid JSON"),
    (b'{"a": NaN}', "NaN is not a JSON number"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
    (b"", "not valid JSON"),
    (b"[" * 100_000, "nested too deeply"),
])
def test_undecodable_json_payloads_are_refused(payload, message):
    with pytest.raises(PayloadError) as err:
        decode_payload(payload, "json")
    assert message in str(err.value)


def test_raw_payloads_must_be_utf8_and_size_is_capped():
    assert decode_payload("  23,5 °C \n".encode(), "raw") == "23,5 °C"
    with pytest.raises(PayloadError, match="not UTF-8 text"):
        decode_payload(b"\xff\xfe", "raw")
    with pytest.raises(PayloadError, match="exceeds"):
        decode_payload(b"1" * (MAX_PAYLOAD_BYTES + 1), "raw")


FIELDS = (FieldMapping("parts", ("counters", "good"), "int"),
          FieldMapping("mode", ("mode",)),
          FieldMapping("load", ("axes", "0", "load"), "float"))


def test_one_bad_field_leaves_the_others_good():
    payload = json.dumps({"counters": {"good": "n/a"}, "mode": "auto",
                          "axes": [{"load": 3}]}).encode()
    mapped = map_message("cnc01", "plant/cnc01/state", payload, "json", FIELDS, 100.0)
    assert [(s.tag, s.value, s.quality) for s in mapped.samples] == [
        ("parts", None, Quality.BAD_CONFIG), ("mode", "auto", Quality.GOOD),
        ("load", 3.0, Quality.GOOD)]
    assert mapped.payload_error is None
    assert mapped.field_errors == {"parts": "path 'counters.good': expected int, got 'n/a'"}
    assert mapped.samples[0].error == ("device cnc01: topic plant/cnc01/state: field parts: "
                                       "path 'counters.good': expected int, got 'n/a'")
    assert all(s.source_ts == 100.0 for s in mapped.samples)


def test_an_undecodable_payload_makes_every_field_bad_with_no_value():
    mapped = map_message("cnc01", "t", b"<xml/>", "json", FIELDS, 100.0)
    assert [(s.value, s.quality) for s in mapped.samples] == [(None, Quality.BAD_CONFIG)] * 3
    assert "not valid JSON" in mapped.payload_error and mapped.field_errors == {}


def test_an_unreadable_timestamp_makes_every_field_bad_rather_than_guessing_the_time():
    payload = json.dumps({"ts": "soon", "counters": {"good": 1}, "mode": "a",
                          "axes": [{"load": 1}]}).encode()
    mapped = map_message("cnc01", "t", payload, "json", FIELDS, 100.0, ("ts",))
    assert all(s.quality is Quality.BAD_CONFIG and s.value is None for s in mapped.samples)
    assert mapped.payload_error == "timestamp field ts: timestamp 'soon' is not ISO 8601"


def test_a_good_timestamp_becomes_the_source_time():
    payload = json.dumps({"meta": {"t": 1714557600000}, "counters": {"good": 1}, "mode": "a",
                          "axes": [{"load": 1}]}).encode()
    mapped = map_message("cnc01", "t", payload, "json", FIELDS, 100.0, ("meta", "t"), "ms")
    assert {s.source_ts for s in mapped.samples} == {1714557600.0}
