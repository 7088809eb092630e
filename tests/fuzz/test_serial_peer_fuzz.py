"""Fuzzing the serial driver through a socat pty pair: a scanner line carrying arbitrary bytes.

Whatever arrives (garbage, control characters, floods without a terminator,
lines that half match the pattern), every batch is good scan samples of text
or bad samples with the reason, and the driver still reads the next good scan.
"""
from __future__ import annotations

import asyncio

from hypothesis import given, settings, strategies as st

from drivers.base import Quality
from tests.drivers.serial import SocatPair, Stream
from tests.drivers.serial.test_driver import scanner
from tests.fuzz import FUZZ

_chunks = st.lists(st.one_of(st.binary(max_size=40), st.sampled_from([b"\r\n", b"B12345\r\n", b"\xff\r\n", b"\x00",
                                                                      b"B" + b"7" * 300 + b"\r\n", b"L123456Z\r\n"])),
                   min_size=5, max_size=30)


@settings(FUZZ, max_examples=10)
@given(_chunks)
def test_any_bytes_on_a_scanner_line_are_good_text_or_bad_samples_and_reading_goes_on(tmp_path_factory, chunks):
    async def scenario(pair, peer):
        driver = scanner(pair.dev, max_line=64)
        stream = Stream(driver)
        await stream.wait_open()
        for chunk in chunks:
            peer.write(chunk)
        peer.write(b"\r\nB999999\r\n")
        batches = []
        while not batches or [s.value for s in batches[-1]][:1] != ["999999"]:
            batches.append(await stream.next())
        await stream.close()
        return batches

    with SocatPair(tmp_path_factory.mktemp("pty")) as pair:
        with pair.open_peer() as peer:
            batches = asyncio.run(asyncio.wait_for(scenario(pair, peer), 30))
    for batch in batches:
        assert [s.tag for s in batch] == ["code", "kind"]
        for sample in batch:
            if sample.quality is Quality.GOOD:
                assert isinstance(sample.value, str) and sample.value.isprintable()
            else:
                assert sample.value is None and sample.error
