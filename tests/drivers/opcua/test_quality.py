"""Status codes to quality, and OPC-UA values to plain Python values (never invented)."""
from __future__ import annotations

import datetime as dt
import math
import uuid

import pytest
from asyncua import ua
from hypothesis import given, strategies as st

from drivers.base import Quality
from drivers.opcua.quality import (ConversionError, convert_value, quality_for_status,
                                   status_name, status_text)

S = ua.StatusCodes


@pytest.mark.parametrize("code, quality", [
    (S.Good, Quality.GOOD),
    (S.GoodClamped, Quality.GOOD),
    (S.UncertainLastUsableValue, Quality.STALE),
    (S.UncertainSensorNotAccurate, Quality.STALE),
    (S.BadWaitingForInitialData, Quality.STALE),
    (S.BadOutOfService, Quality.STALE),
    (S.BadTimeout, Quality.BAD_TIMEOUT),
    (S.BadRequestTimeout, Quality.BAD_TIMEOUT),
    (S.BadNodeIdUnknown, Quality.BAD_CONFIG),
    (S.BadNodeIdInvalid, Quality.BAD_CONFIG),
    (S.BadTypeMismatch, Quality.BAD_CONFIG),
    (S.BadAttributeIdInvalid, Quality.BAD_CONFIG),
    (S.BadUserAccessDenied, Quality.BAD_CONFIG),
    (S.BadCommunicationError, Quality.BAD_COMM),
    (S.BadConnectionClosed, Quality.BAD_COMM),
    (S.BadServerNotConnected, Quality.BAD_COMM),
    (S.BadDeviceFailure, Quality.BAD_COMM),
    (S.BadInternalError, Quality.BAD_COMM),  # not listed: the path to the value is broken
])
def test_status_codes_map_to_the_documented_quality(code, quality):
    assert quality_for_status(code) is quality
    assert quality_for_status(code | 0x0400) is quality  # info bits do not change the meaning


@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_only_good_severity_is_good_and_uncertain_is_stale(code):
    quality = quality_for_status(code)
    severity = code >> 30
    assert (quality is Quality.GOOD) == (severity == 0)
    if severity == 1:
        assert quality is Quality.STALE
    assert status_name(code)  # every code has a printable name


def test_status_text_names_the_code_and_says_what_it_means():
    assert status_text(S.BadNodeIdUnknown) == ("BadNodeIdUnknown (the node id refers to a node "
                                               "that does not exist in the server address space)")
    assert status_name(0x80FF0000) == "Bad(0x80FF0000)"


@pytest.mark.parametrize("raw, plain", [
    (True, True), (7, 7), (-3, -3), (2.5, 2.5), ("PN-100", "PN-100"),
    (ua.LocalizedText("Läuft", "de"), "Läuft"),
    (dt.datetime(2024, 3, 31, 1, 30), "2024-03-31T01:30:00+00:00"),
    (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    (ua.ServerState.Running, 0),
])
def test_values_become_plain_python(raw, plain):
    value = convert_value(raw)
    assert value == plain and type(value) is type(plain)


@pytest.mark.parametrize("raw, quality, words", [
    (None, Quality.STALE, "no value"),
    (math.nan, Quality.STALE, "not a finite number"),
    (math.inf, Quality.STALE, "not a finite number"),
    ([1, 2], Quality.BAD_CONFIG, "array values are not supported"),
    (b"\x00\x01", Quality.BAD_CONFIG, "ByteString"),
    (ua.Range(Low=0.0, High=1.0), Quality.BAD_CONFIG, "Range are not supported"),
])
def test_unrepresentable_values_are_bad_not_invented(raw, quality, words):
    with pytest.raises(ConversionError) as info:
        convert_value(raw)
    assert info.value.quality is quality and words in str(info.value)


@pytest.mark.parametrize("raw, hint, converted", [
    (3.0, "int", 3), (True, "int", 1), (" 12 ", "int", 12), (5, "float", 5.0),
    ("2.5", "float", 2.5), (1, "bool", True), (0, "bool", False), (False, "string", "false"),
    (12, "string", "12"),
])
def test_type_hints_convert_faithfully(raw, hint, converted):
    value = convert_value(raw, hint)
    assert value == converted and type(value) is type(converted)


@pytest.mark.parametrize("raw, hint", [
    (3.7, "int"), ("12a", "int"), (True, "float"), ("nan", "float"), (2, "bool"), ("yes", "bool"),
])
def test_type_hints_never_round_or_guess(raw, hint):
    with pytest.raises(ConversionError) as info:
        convert_value(raw, hint)
    assert info.value.quality is Quality.BAD_CONFIG


@given(st.integers(min_value=-(2 ** 63), max_value=2 ** 64 - 1))
def test_integers_of_any_width_stay_exact(number):
    assert convert_value(number) == number
    assert convert_value(number, "string") == str(number)
