"""Coalescing tags into read requests: as few as the protocol and max_gap allow."""
from __future__ import annotations

from hypothesis import given, strategies as st

from drivers.modbus.config import TagConfig
from drivers.modbus.plan import plan_reads


def tag(name, address, data_type="uint16", function="holding"):
    return TagConfig(name=name, function=function, address=address, type=data_type)


def shape(requests):
    return [(r.function, r.address, r.count, [t.name for t in r.tags]) for r in requests]


def test_nearby_tags_share_one_request():
    tags = [tag("a", 0), tag("b", 1, "uint32"), tag("c", 10, "int16")]
    assert shape(plan_reads(tags, max_gap=8)) == [("holding", 0, 11, ["a", "b", "c"])]


def test_gap_larger_than_max_gap_starts_a_new_request():
    tags = [tag("a", 0), tag("b", 1, "uint32"), tag("c", 12)]  # 9 unused registers (3..11)
    assert shape(plan_reads(tags, max_gap=8)) == [
        ("holding", 0, 3, ["a", "b"]), ("holding", 12, 1, ["c"])]


def test_max_gap_zero_coalesces_only_adjacent_tags():
    tags = [tag("a", 0), tag("b", 1), tag("c", 3)]
    assert shape(plan_reads(tags, max_gap=0)) == [
        ("holding", 0, 2, ["a", "b"]), ("holding", 3, 1, ["c"])]


def test_a_request_never_exceeds_125_registers():
    assert shape(plan_reads([tag("a", 0), tag("b", 124)], max_gap=200)) == [
        ("holding", 0, 125, ["a", "b"])]
    assert shape(plan_reads([tag("a", 0), tag("b", 124, "uint32")], max_gap=200)) == [
        ("holding", 0, 1, ["a"]), ("holding", 124, 2, ["b"])]


def test_functions_are_never_mixed_and_order_of_config_does_not_matter():
    tags = [tag("i", 1, function="input"), tag("h2", 5), tag("h1", 0)]
    assert shape(plan_reads(tags, max_gap=8)) == [
        ("holding", 0, 6, ["h1", "h2"]), ("input", 1, 1, ["i"])]


def test_overlapping_tags_share_registers():
    tags = [tag("word", 0, "uint32"), tag("high", 0), tag("low", 1)]
    [request] = plan_reads(tags, max_gap=0)
    assert (request.address, request.count) == (0, 2)
    assert request.registers_of(tags[2], [7, 9]) == [9]


@given(st.lists(st.tuples(st.sampled_from(["holding", "input"]), st.integers(0, 600),
                          st.sampled_from(["uint16", "int32"])), min_size=1, max_size=40),
       st.integers(0, 123))
def test_every_tag_is_read_once_within_protocol_limits(specs, max_gap):
    tags = [tag(f"t{i}", addr, dt, fn) for i, (fn, addr, dt) in enumerate(specs)]
    requests = plan_reads(tags, max_gap=max_gap)
    seen = [t.name for r in requests for t in r.tags]
    assert sorted(seen) == sorted(t.name for t in tags)
    for r in requests:
        assert 1 <= r.count <= 125
        for t in r.tags:
            assert t.function == r.function
            assert r.address <= t.address and t.end <= r.address + r.count - 1
    for fn in ("holding", "input"):
        spans = sorted((r.address, r.address + r.count - 1) for r in requests if r.function == fn)
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start > end  # requests of one function never overlap


def bit(name, address, function="coil"):
    return TagConfig(name=name, function=function, address=address, type="bool")


def test_coils_and_discrete_inputs_coalesce_in_bits_up_to_2000():
    tags = [bit("a", 0), bit("b", 40), bit("c", 1999), bit("d", 2000), bit("x", 5, "discrete")]
    assert shape(plan_reads(tags, max_gap=8, max_bit_gap=2000)) == [
        ("coil", 0, 2000, ["a", "b", "c"]), ("coil", 2000, 1, ["d"]),
        ("discrete", 5, 1, ["x"])]
    assert shape(plan_reads(tags[:2], max_gap=8, max_bit_gap=32)) == [
        ("coil", 0, 1, ["a"]), ("coil", 40, 1, ["b"])]


def test_max_registers_caps_a_request_for_devices_with_small_buffers():
    tags = [tag(f"t{i}", i) for i in range(10)]
    assert [r.count for r in plan_reads(tags, max_gap=8, max_count=4)] == [4, 4, 2]
    assert len(plan_reads(tags, max_gap=8, max_count=1)) == 10


def test_a_bit_of_a_register_shares_the_register_read():
    flags = TagConfig(name="ready", function="holding", address=3, type="bool", bit=4)
    [request] = plan_reads([tag("word", 2, "uint32"), flags], max_gap=0)
    assert (request.address, request.count) == (2, 2)
    assert request.registers_of(flags, [0, 0x10]) == [0x10]
