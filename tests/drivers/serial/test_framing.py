"""Line framing: chunking never changes the lines, floods are cut, garbage is named."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.serial.framing import GarbageLine, Line, LineFramer, Overflow, decode_line, preview


def feed_chunks(framer, data, cuts):
    events, start = [], 0
    for cut in sorted(cuts) + [len(data)]:
        events += framer.feed(data[start:cut])
        start = max(start, cut)
    return events


def test_lines_are_cut_at_the_terminator_even_when_it_is_split_across_reads():
    framer = LineFramer(b"\r\n", 64)
    assert framer.feed(b"S S  1.0 g\r") == []
    assert framer.feed(b"\nS D") == [Line(b"S S  1.0 g")]
    assert framer.buffered == 3
    assert framer.feed(b"  2.0 g\r\n\r\n") == [Line(b"S D  2.0 g"), Line(b"")]


def test_a_line_of_exactly_max_line_bytes_is_kept_and_one_more_is_discarded():
    framer = LineFramer(b"\r\n", 8)
    assert framer.feed(b"12345678\r\n") == [Line(b"12345678")]
    assert framer.feed(b"123456789\r\nok\r\n") == [Overflow(b"123456789"), Line(b"ok")]


def test_a_flood_without_terminator_is_reported_once_and_framing_resumes():
    framer = LineFramer(b"\r\n", 16)
    events = []
    for _ in range(100):
        events += framer.feed(b"\xff" * 50)
    assert events == [Overflow(b"\xff" * 17)]
    assert framer.buffered == 0  # memory stays bounded while discarding
    assert framer.feed(b"tail\r\nB123\r\n") == [Line(b"B123")]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=12),
       st.lists(st.integers(min_value=0, max_value=600), max_size=10),
       st.sampled_from([b"\r\n", b"\n", b"\r", b"\x03"]),
       st.integers(min_value=8, max_value=30))
def test_chunking_never_changes_the_events(parts, cuts, terminator, max_line):
    data = b"".join(p.replace(terminator[:1], b"") + terminator for p in parts)
    whole = LineFramer(terminator, max_line).feed(data)
    chunked = feed_chunks(LineFramer(terminator, max_line), data, cuts)
    assert chunked == whole
    lines = [p.replace(terminator[:1], b"") for p in parts]
    expected = [Line(x) if len(x) <= max_line else Overflow(x[:min(32, max_line + 1)])
                for x in lines]
    assert whole == expected


def test_decode_line_strips_whitespace_and_names_the_garbage():
    assert decode_line(b"  S S   1.5 g \r") == "S S   1.5 g"
    assert decode_line("Ä123".encode()) == "Ä123"
    with pytest.raises(GarbageLine, match=r"not UTF-8 \(byte 0xff at offset 2\)"):
        decode_line(b"ab\xffcd")
    with pytest.raises(GarbageLine, match=r"control character '\\x00' at offset 1"):
        decode_line(b"a\x00b")


@given(st.binary(max_size=200))
def test_decode_line_either_returns_clean_text_or_refuses(data):
    try:
        text = decode_line(data)
    except GarbageLine as exc:
        assert str(exc)
    else:
        assert text == text.strip()
        assert all(ch == "\t" or ch.isprintable() for ch in text)


def test_preview_is_short_and_log_safe():
    assert preview(b"abc") == "b'abc'"
    long = preview(b"\x00" * 300)
    assert long.endswith("...(300 bytes)") and "\n" not in long and len(long) < 200
