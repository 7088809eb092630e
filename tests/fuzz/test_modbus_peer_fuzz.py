"""Fuzzing the Modbus driver against a real pymodbus server serving arbitrary registers.

Whatever a peer serves (garbage words, NaN patterns, huge float64s under a
large `scale`), every tag of every poll is a good sample of its declared type
with a finite value, or a bad sample with the reason; the poll loop lives on.
"""
from __future__ import annotations

import asyncio
import math

from hypothesis import given, settings, strategies as st

from drivers.base import Quality
from tests.drivers.modbus import ModbusTestServer, by_tag, next_batch
from tests.drivers.modbus.test_driver import holding, make_driver
from tests.fuzz import FUZZ

TAGS = {
    "u16": holding(0, "uint16"), "i16": holding(1, "int16"), "u32": holding(2, "uint32"),
    "i32": holding(4, "int32", word_order="little"), "f32": holding(6, "float32", scale=1e30),
    "u64": holding(8, "uint64", scale=1e300), "f64": holding(12, "float64", byte_order="little", offset=1e308),
    "s": holding(16, "string", length=2), "bit": holding(18, "bool", bit=15),
}
KINDS = {"u16": int, "i16": int, "u32": int, "i32": int, "f32": float, "u64": float, "f64": float, "s": str,
         "bit": bool}


@settings(FUZZ, max_examples=40)
@given(st.lists(st.integers(0, 0xFFFF), min_size=19, max_size=19))
def test_any_registers_a_peer_serves_become_typed_finite_values_or_bad_samples(registers):
    async def scenario():
        async with ModbusTestServer(registers) as server:
            driver = make_driver(server.port, TAGS)
            samples = driver.samples()
            try:
                return by_tag(await next_batch(samples, lambda b: True))
            finally:
                await driver.stop()

    batch = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert set(batch) == set(TAGS)
    for name, sample in batch.items():
        if sample.quality is Quality.GOOD:
            assert isinstance(sample.value, KINDS[name]), (name, sample)
            if isinstance(sample.value, float):
                assert math.isfinite(sample.value), (name, sample)
        else:
            assert sample.value is None and f"tag {name}" in sample.error
