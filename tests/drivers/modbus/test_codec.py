"""Register decoding: known vectors from device manuals and round-trip properties."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from drivers.modbus.codec import CodecError, decode, encode, register_count, scale_value

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
