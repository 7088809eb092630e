"""Register decoding: known vectors from device manuals and round-trip properties."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from drivers.modbus.codec import (CodecError, decode, encode, register_count, scale_value,
                                  unscale_value)

RANGES = {"uint16": (0, 2**16 - 1), "int16": (-(2**15), 2**15 - 1),
          "uint32": (0, 2**32 - 1), "int32": (-(2**31), 2**31 - 1)}


@pytest.mark.parametrize("registers,data_type,word_order,expected", [
    ([0xFFFF], "uint16", "big", 65535),
    ([0xFFFF], "int16", "big", -1),
    ([0x8000], "int16", "big", -32768),
    ([0xEE6B, 0x2800], "uint32", "big", 4_000_000_000),
    ([0x2800, 0xEE6B], "uint32", "little", 4_000_000_000),
    ([0xFFFE, 0x1DC0], "int32", "big", -123_456),
    ([0x1DC0, 0xFFFE], "int32", "little", -123_456),
    ([0x0000, 0x0001], "uint32", "big", 1),
    ([0x0000, 0x0001], "uint32", "little", 65536),
])
def test_known_register_vectors_decode(registers, data_type, word_order, expected):
    assert decode(registers, data_type, word_order) == expected


def test_wrong_register_count_is_refused():
    with pytest.raises(CodecError):
        decode([1], "uint32")
    with pytest.raises(CodecError):
        decode([1, 2], "int16")


def test_out_of_range_value_is_refused():
    with pytest.raises(CodecError):
        encode(70000, "uint16")
    with pytest.raises(CodecError):
        encode(-1, "uint32")


def test_unscaled_value_stays_an_integer_and_scaled_is_float():
    assert scale_value(1234) == 1234 and isinstance(scale_value(1234), int)
    assert scale_value(-250, 0.1, 1.0) == pytest.approx(-24.0)
    assert scale_value(10, 1.0, 0.5) == 10.5


@st.composite
def typed_values(draw):
    data_type = draw(st.sampled_from(sorted(RANGES)))
    lo, hi = RANGES[data_type]
    return data_type, draw(st.integers(lo, hi)), draw(st.sampled_from(["big", "little"]))


@given(typed_values())
def test_encode_then_decode_gives_the_value_back(case):
    data_type, value, word_order = case
    registers = encode(value, data_type, word_order)
    assert len(registers) == register_count(data_type)
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert decode(registers, data_type, word_order) == value


@given(st.sampled_from(sorted(RANGES)), st.sampled_from(["big", "little"]),
       st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2))
def test_any_registers_decode_and_encode_back(data_type, word_order, words):
    registers = words[:register_count(data_type)]
    value = decode(registers, data_type, word_order)
    lo, hi = RANGES[data_type]
    assert lo <= value <= hi
    assert encode(value, data_type, word_order) == registers


@given(st.sampled_from(["uint32", "int32"]), st.lists(st.integers(0, 0xFFFF), min_size=2,
                                                       max_size=2))
def test_little_word_order_is_big_with_words_swapped(data_type, words):
    assert decode(words, data_type, "little") == decode(words[::-1], data_type, "big")


# -- the wider type set: 64-bit, floats, strings, bits, byte order ----------------------

ALL_RANGES = {**RANGES, "uint64": (0, 2**64 - 1), "int64": (-(2**63), 2**63 - 1)}


@pytest.mark.parametrize("registers,data_type,word_order,byte_order,expected", [
    ([0x4049, 0x0FDB], "float32", "big", "big", pytest.approx(3.14159274)),     # ABCD
    ([0x0FDB, 0x4049], "float32", "little", "big", pytest.approx(3.14159274)),  # CDAB
    ([0x4940, 0xDB0F], "float32", "big", "little", pytest.approx(3.14159274)),  # BADC
    ([0xDB0F, 0x4940], "float32", "little", "little", pytest.approx(3.14159274)),  # DCBA
    ([0x3FF0, 0, 0, 0], "float64", "big", "big", 1.0),
    ([0, 0, 0, 0x3FF0], "float64", "little", "big", 1.0),
    ([0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], "int64", "big", "big", -2),
    ([0x0001, 0, 0, 0], "uint64", "big", "big", 2**48),
    ([0x0001, 0, 0, 0], "uint64", "little", "big", 1),
    ([0x3412], "uint16", "big", "little", 0x1234),
])
def test_known_vectors_of_the_wider_types(registers, data_type, word_order, byte_order,
                                          expected):
    assert decode(registers, data_type, word_order, byte_order) == expected


def test_strings_stop_at_the_first_nul_and_lose_trailing_spaces():
    assert decode([0x4142, 0x4320, 0x2020], "string", length=3) == "ABC"
    assert decode([0x4142, 0x0043, 0x4445], "string", length=3) == "AB"  # stale bytes after NUL
    assert decode([0x4241, 0x0043], "string", byte_order="little", length=2) == "ABC"
    assert decode([0xE96C, 0x6500], "string", length=2) == "\u00e9le"  # Latin-1, never fails
    assert encode("AB-7", "string", length=3) == [0x4142, 0x2D37, 0x0000]
    with pytest.raises(CodecError, match="holds 4"):
        encode("ABCDE", "string", length=2)


def test_a_bool_is_one_bit_of_the_register():
    assert [decode([0b1000_0000_0000_0101], "bool", bit=b) for b in (0, 1, 2, 15)] == [
        True, False, True, True]
    assert decode([0x0100], "bool", byte_order="little", bit=0) is True
    with pytest.raises(CodecError):
        decode([1], "bool")
    with pytest.raises(CodecError):
        encode(True, "bool")


def test_unscale_inverts_scale_and_refuses_what_cannot_be_written():
    assert unscale_value(1234.5, "uint32", 0.1) == 12345
    assert unscale_value(-24.0, "int16", 0.1, 1.0) == -250
    assert unscale_value(7.0, "uint16") == 7 and isinstance(unscale_value(7.0, "uint16"), int)
    assert unscale_value(2.5, "float32", 0.5) == 5.0
    for bad in (1.5, True, "3", float("inf")):
        with pytest.raises(CodecError):
            unscale_value(bad, "uint16")


@st.composite
def any_typed_value(draw):
    data_type = draw(st.sampled_from(sorted(ALL_RANGES) + ["float32", "float64"]))
    if data_type == "float32":
        value = draw(st.floats(width=32, allow_nan=False, allow_infinity=False))
    elif data_type == "float64":
        value = draw(st.floats(allow_nan=False, allow_infinity=False))
    else:
        value = draw(st.integers(*ALL_RANGES[data_type]))
    return (data_type, value, draw(st.sampled_from(["big", "little"])),
            draw(st.sampled_from(["big", "little"])))


@given(any_typed_value())
def test_every_type_and_order_round_trips(case):
    data_type, value, word_order, byte_order = case
    registers = encode(value, data_type, word_order, byte_order)
    assert len(registers) == register_count(data_type)
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert decode(registers, data_type, word_order, byte_order) == value


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=255), max_size=10),
       st.sampled_from(["big", "little"]))
def test_strings_round_trip(text, byte_order):
    registers = encode(text, "string", byte_order=byte_order, length=5)
    assert decode(registers, "string", byte_order=byte_order, length=5) == text
