"""Reading one CSV file: typed cells, timestamps in a time zone, all-or-nothing errors."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.filedrop.csvfile import BadFile, CellError, convert, parse_timestamp, read_rows
from tests.drivers.filedrop import GOOD_CSV, make_driver

BERLIN = ZoneInfo("Europe/Berlin")


def config(tmp_path, **overrides):
    return make_driver(tmp_path, **overrides).config


def test_rows_are_numbered_from_the_header_and_blank_lines_skipped(tmp_path):
    rows = read_rows(("\ufeff" + GOOD_CSV + "\n\n").encode(), config(tmp_path))
    assert [r.number for r in rows] == [2, 3]
    assert rows[0].values == {"parts": 100, "temp": 21.5, "order": "WO-1"}
    assert rows[0].ts == datetime(2024, 3, 5, 8, tzinfo=timezone.utc).timestamp()


def test_quoted_fields_with_delimiters_and_line_breaks_are_one_cell(tmp_path):
    text = 'time,parts,temp,order\n2024-03-05T08:00:00,1,2,"WO,1\nsecond line"\n'
    [row] = read_rows(text.encode(), config(tmp_path))
    assert row.values["order"] == "WO,1\nsecond line"


@pytest.mark.parametrize("text, where", [
    ("time,parts,temp,order\n2024-03-05T08:00:00,1,2\n", "row 2"),
    ("time,parts,temp,order\n2024-03-05T08:00:00,1,x,W\n", "row 2 column 'temp' value 'x'"),
    ("time,parts,temp,order\n2024-03-05T08:00:00,,2,W\n", "row 2 column 'parts' value ''"),
    ("time,parts,order\n", "row 1 column 'temp'"),
    ("time,parts,temp,temp,order\n", "row 1 column 'temp'"),
    ('time,parts,temp,order\n2024-03-05T08:00:00,1,2,"W\n', ""),
    ("   \n", ""),
])
def test_bad_files_say_where(tmp_path, text, where):
    with pytest.raises(BadFile) as err:
        read_rows(text.encode(), config(tmp_path))
    assert err.value.where() == where
    assert str(err.value).startswith(where)


def test_the_line_is_named_when_it_differs_from_the_row(tmp_path):
    text = 'time,parts,temp,order\n2024-03-05T08:00:00,1,2,"a\nb"\n2024-03-05T08:00:00,x,2,c\n'
    with pytest.raises(BadFile) as err:
        read_rows(text.encode(), config(tmp_path))
    assert err.value.where() == "row 3 (line 4) column 'parts' value 'x'"


@given(st.integers(min_value=-10**18, max_value=10**18))
def test_integers_read_back(n):
    assert convert(f" {n} ", "int") == n


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_read_back_with_either_decimal_mark(x):
    text = repr(x)
    assert convert(text, "float") == x
    if "e" not in text:
        assert convert(text.replace(".", ","), "float", ",") == x


@pytest.mark.parametrize("raw, kind", [("1.0", "int"), ("1_000", "int"), ("0x10", "int"),
                                       ("nan", "float"), ("inf", "float"), ("1_0", "float"),
                                       ("1e999", "float"), ("", "float"), ("12 kg", "float")])
def test_cells_that_are_not_their_type_are_refused(raw, kind):
    with pytest.raises(CellError):
        convert(raw, kind)


def test_a_decimal_comma_file_refuses_points():
    with pytest.raises(CellError, match="decimal mark is ','"):
        convert("1.5", "float", ",")


def test_str_cells_are_kept_exactly():
    assert convert("  WO 1 ", "str") == "  WO 1 "


def test_naive_times_are_read_in_the_zone_and_aware_ones_keep_their_offset():
    assert parse_timestamp("2024-07-01 12:00:00", None, BERLIN) == \
        datetime(2024, 7, 1, 10, tzinfo=timezone.utc).timestamp()
    assert parse_timestamp("2024-07-01T12:00:00+00:00", None, BERLIN) == \
        datetime(2024, 7, 1, 12, tzinfo=timezone.utc).timestamp()
    assert parse_timestamp("01.07.2024 12:00 +0100", "%d.%m.%Y %H:%M %z", BERLIN) == \
        datetime(2024, 7, 1, 11, tzinfo=timezone.utc).timestamp()


def test_the_skipped_hour_is_refused_and_the_repeated_hour_is_the_first():
    with pytest.raises(CellError, match="does not exist in Europe/Berlin"):
        parse_timestamp("2024-03-31 02:30:00", None, BERLIN)
    # 02:30 happens twice on 2024-10-27: first in summer time (UTC+2)
    assert parse_timestamp("2024-10-27 02:30:00", None, BERLIN) == \
        datetime(2024, 10, 27, 0, 30, tzinfo=timezone.utc).timestamp()


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)))
def test_every_existing_local_time_reads_back(naive):
    local = naive.replace(tzinfo=BERLIN, fold=0)
    exists = local.astimezone(timezone.utc).astimezone(BERLIN).replace(tzinfo=None) == naive
    text = naive.strftime("%d.%m.%Y %H:%M:%S.%f")
    if exists:
        ts = parse_timestamp(text, "%d.%m.%Y %H:%M:%S.%f", BERLIN)
        assert math.isclose(ts, local.timestamp(), abs_tol=1e-6)
    else:
        with pytest.raises(CellError):
            parse_timestamp(text, "%d.%m.%Y %H:%M:%S.%f", BERLIN)


def test_unparseable_timestamps_name_the_format():
    with pytest.raises(CellError, match="does not match '%d.%m.%Y'"):
        parse_timestamp("2024-01-01", "%d.%m.%Y", BERLIN)
    with pytest.raises(CellError, match="empty timestamp"):
        parse_timestamp(" ", None, BERLIN)


@pytest.mark.parametrize("raw", ["99999999999999999999999", "9223372036854775808", "-9223372036854775809",
                                 "9" * 5000])
def test_an_integer_cell_beyond_64_bits_is_refused_naming_row_and_column(tmp_path, raw):
    """`99999999999999999999999` became 4,135,583,703 parts after the counter masked it; 5,000 digits
    raised ValueError (Python's int() digit limit) out of the reader."""
    text = f"time,parts,temp,order\n2024-03-05T08:00:00,{raw},2,W\n"
    with pytest.raises(BadFile) as err:
        read_rows(text.encode(), config(tmp_path))
    assert "row 2 column 'parts'" in str(err.value) and "out of range" in str(err.value)
    assert convert("9223372036854775807", "int") == 2**63 - 1
