"""Fuzzing the drivers' decoding: Modbus registers, CSV files, serial frames, MQTT payloads, OPC-UA values.

Each decoder gets arbitrary input and must answer with a value of the declared
type or its own error (`CodecError`, `BadFile`, `GarbageLine`/`UnexpectedLine`/
`ScaleError`, a bad-quality sample, `ConversionError`), never another
exception. Every good value must also be one the rest of the gateway can carry:
a finite number, a source time an event can show.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

from hypothesis import given, settings, strategies as st

from drivers.base import ConfigCollector, Quality
from drivers.filedrop import FileDropDriver
from drivers.filedrop.csvfile import BadFile, read_rows
from drivers.modbus.codec import DATA_TYPES, CodecError, decode, encode, register_count, scale_value
from drivers.mqtt.payload import FieldMapping, map_message
from drivers.opcua.quality import ConversionError, convert_value
from drivers.serial.framing import GarbageLine, Line, LineFramer, Overflow, decode_line
from drivers.serial.parsers import (ScaleError, UnexpectedLine, parse_scan, parse_weighing, scan_samples,
                                    weighing_samples)
from gateway.events import iso_utc
from tests.fuzz import FUZZ

# -- Modbus -----------------------------------------------------------------------------------

_registers = st.lists(st.integers(min_value=0, max_value=0xFFFF), max_size=8)


@FUZZ
@given(st.sampled_from(DATA_TYPES), _registers, st.sampled_from(["big", "little"]),
       st.sampled_from(["big", "little"]), st.one_of(st.none(), st.integers(-2, 17)),
       st.one_of(st.none(), st.integers(-1, 130)))
def test_any_registers_decode_to_their_type_or_a_codec_error(data_type, registers, word, byte, bit, length):
    try:
        value = decode(registers, data_type, word, byte, bit=bit, length=length)
    except CodecError:
        return
    if data_type == "bool":
        assert isinstance(value, bool)
    elif data_type == "string":
        assert isinstance(value, str)
    elif data_type.startswith("float"):
        assert isinstance(value, float)
    else:
        assert isinstance(value, int) and encode(value, data_type, word, byte) == list(registers)


@FUZZ
@given(st.sampled_from([t for t in DATA_TYPES if t not in ("bool", "string")]), st.data(),
       st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x != 0),
       st.floats(allow_nan=False, allow_infinity=False))
def test_scaling_any_decoded_number_never_raises(data_type, data, scale, offset):
    registers = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=register_count(data_type),
                                   max_size=register_count(data_type)))
    value = decode(registers, data_type)
    scaled = scale_value(value, scale, offset)
    assert isinstance(scaled, (int, float))   # the driver refuses a non-finite result (tested in drivers)


# -- CSV ----------------------------------------------------------------------------------------

_CONFIGS: dict[tuple, Any] = {}


def _csv_config(tmp_path_factory: Any, **overrides: Any) -> Any:
    key = tuple(sorted(overrides.items()))
    if key not in _CONFIGS:
        _CONFIGS[key] = _make_csv_config(tmp_path_factory, **overrides)
    return _CONFIGS[key]


def _make_csv_config(tmp_path_factory: Any, **overrides: Any) -> Any:
    section: dict[str, Any] = {
        "type": "filedrop", "directory": str(tmp_path_factory.mktemp("drop")), "timestamp_column": "time",
        "columns": {"parts": "parts", "temp": "temp", "order": "order"},
        "types": {"parts": "int", "temp": "float", "order": "str"}, "machine": "M", **overrides}
    issues = ConfigCollector()
    cfg = FileDropDriver.parse_config(section, "devices.press", issues)
    assert issues.issues == []
    return cfg


_cells = st.one_of(st.integers(), st.floats(), st.text(max_size=12),
                   st.sampled_from(["", " ", '"', '""', ";", ",", "\n", "\r", "\x00", "1,5", "1.5", "1e999",
                                    "9" * 5000, "-0", "+7", "2024-03-05T08:00:00", "2024-02-30T00:00:00",
                                    "2024-03-31T02:30:00", "\ufeff"]))


_numbers = st.one_of(st.integers(), st.floats(), st.integers(0, 6000).map(lambda n: "9" * n),
                     st.sampled_from(["1e999", "-1e999", "1,5", "NaN", "inf", "0x10", "1_000"]))


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_are_rows_or_a_bad_file(tmp_path_factory, data):
    cfg = _csv_config(tmp_path_factory)
    _rows_or_bad_file(data, cfg)


@FUZZ
@given(st.lists(st.lists(_cells, min_size=1, max_size=5), max_size=6),
       st.sampled_from([(",", "."), (";", ","), (";", "."), ("\t", ",")]),
       st.sampled_from(["utf-8", "cp1252", "latin-1"]),
       st.lists(st.tuples(_numbers, _numbers), max_size=3))
def test_any_table_of_cells_is_rows_or_a_bad_file(tmp_path_factory, table, dialect, encoding, typed):
    delimiter, decimal = dialect
    cfg = _csv_config(tmp_path_factory, delimiter=delimiter, encoding=encoding, decimal=decimal,
                      timezone="Europe/Berlin")
    lines = [delimiter.join(["time", "parts", "temp", "order"])]
    lines += [delimiter.join(str(c) for c in row) for row in table]
    lines += [delimiter.join(["2024-03-05T08:00:00", str(parts), str(temp), "W"]) for parts, temp in typed]
    _rows_or_bad_file("\n".join(lines).encode(encoding, "replace"), cfg)


def _rows_or_bad_file(data: bytes, cfg: Any) -> None:
    try:
        rows = read_rows(data, cfg)
    except BadFile as exc:
        assert str(exc)
        return
    for row in rows:
        iso_utc(row.ts)
        assert isinstance(row.values["parts"], int) and -(2**63) <= row.values["parts"] < 2**63
        assert isinstance(row.values["temp"], float) and math.isfinite(row.values["temp"])


# -- serial -------------------------------------------------------------------------------------

_weighings = st.one_of(
    st.text(max_size=30),
    st.builds(lambda status, sign, number, unit: f"S {status} {sign}{number} {unit}",
              st.sampled_from(["S", "D", "X", ""]), st.sampled_from(["", "-", "+", "--"]),
              st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text("0123456789.", max_size=400)),
              st.sampled_from(["g", "kg", "", "lb", "1g", "ggggggggg"])),
    st.sampled_from(["ES", "ET", "EL", "S +", "S -", "S I", "S S", "S D .", "S S 1e5 g", "S S ١٢٣ g"]))


@FUZZ
@given(st.lists(st.binary(max_size=40), max_size=10), st.sampled_from([b"\r\n", b"\n", b"\x03"]),
       st.integers(1, 64))
def test_any_byte_stream_frames_into_lines_or_overflows_however_it_is_chunked(chunks, terminator, max_line):
    framer = LineFramer(terminator, max_line)
    whole = LineFramer(terminator, max_line)
    events = [e for chunk in chunks for e in framer.feed(chunk)]
    assert events == whole.feed(b"".join(chunks))
    for event in events:
        assert isinstance(event, (Line, Overflow))
        if isinstance(event, Line):
            assert len(event.data) <= max_line and terminator not in event.data
            try:
                decode_line(event.data)
            except GarbageLine:
                pass


@FUZZ
@given(_weighings)
def test_any_scale_line_is_a_weighing_or_a_named_error(line):
    try:
        weighing = parse_weighing(line)
    except (ScaleError, UnexpectedLine) as exc:
        assert str(exc)
        return
    for sample in weighing_samples("scale1", "weight", "unit", weighing, 1.0):
        if sample.quality is Quality.GOOD and sample.tag == "weight":
            assert isinstance(sample.value, float) and math.isfinite(sample.value)


@FUZZ
@given(st.text(max_size=40))
def test_any_scanned_line_matches_or_not(line):
    pattern = re.compile(r"(?P<code>B\d+)(?:-(?P<lot>\w+))?")
    groups = parse_scan(line, pattern)
    if groups is not None:
        assert all(isinstance(s.value, str) for s in scan_samples("scanner1", "code", line, groups, 1.0))


# -- MQTT ---------------------------------------------------------------------------------------

_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=15)
_leaf_numbers = st.one_of(st.integers(), st.floats(allow_nan=False), st.integers(0, 5000).map(lambda n: "9" * n),
                          st.integers(-(10**400), 10**400))
_payloads = st.one_of(
    st.binary(max_size=200),
    _json.map(lambda d: json.dumps(d).encode()),
    st.dictionaries(st.sampled_from(["parts", "ts", "a", "0"]), _json, max_size=4).map(lambda d: json.dumps(d).encode()),
    st.fixed_dictionaries({"parts": _leaf_numbers, "ts": _leaf_numbers}).map(lambda d: json.dumps(d).encode()),
    st.sampled_from([b'{"parts": 1e400}', b'{"parts": NaN}', b'{"ts": 1e300, "parts": 1}', b'{"ts": -1, "parts": 1}',
                     b'{"ts": "9999-12-31T23:59:59-14:00", "parts": 1}', b'{"parts": ' + b"9" * 5000 + b"}",
                     b"[" * 100_000, b'{"parts": "' + b"9" * 5000 + b'"}', b"\xff\xfe"]))
_types = st.sampled_from([None, "int", "float", "bool", "str"])
_fields = st.tuples(
    st.builds(FieldMapping, st.just("parts"), st.just(("parts",)), _types),
    st.lists(st.builds(FieldMapping, st.sampled_from(["temp", "state"]),
                       st.lists(st.sampled_from(["parts", "a", "0", "ts", ""]), max_size=3).map(tuple), _types),
             max_size=2, unique_by=lambda f: f.name)).map(lambda t: [t[0], *t[1]])


@FUZZ
@given(_payloads, st.sampled_from(["json", "raw"]), _fields,
       st.sampled_from([None, ("ts",), ("a", "0")]), st.sampled_from(["auto", "s", "ms"]))
def test_any_payload_maps_to_typed_good_samples_or_bad_ones(payload, fmt, fields, ts_path, unit):
    mapped = map_message("cnc01", "plant/cnc01/state", payload, fmt, fields, 1_700_000_000.0, ts_path, unit)
    assert [s.tag for s in mapped.samples] == [f.name for f in fields]
    kinds = {"int": int, "float": float, "bool": bool, "str": str}
    for sample, field in zip(mapped.samples, fields):
        iso_utc(sample.source_ts)   # every source time is one an event can show
        if sample.quality is not Quality.GOOD:
            assert sample.value is None and "device cnc01" in sample.error
            continue
        if field.type is not None:
            assert type(sample.value) is kinds[field.type]
        if isinstance(sample.value, float):
            assert math.isfinite(sample.value)
        if isinstance(sample.value, int):
            assert -(2**63) <= sample.value < 2**63


# -- OPC-UA -------------------------------------------------------------------------------------

@FUZZ
@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                 st.binary(max_size=4), st.lists(st.integers(), max_size=3), st.datetimes(), st.uuids(),
                 st.sampled_from(["9" * 5000, " 12 ", "1e999", "nan", "-0"])),
       st.sampled_from([None, "int", "float", "bool", "string"]))
def test_any_opcua_value_converts_to_its_hint_or_a_conversion_error(value, hint):
    try:
        plain = convert_value(value, hint)
    except ConversionError as exc:
        assert str(exc) and exc.quality is not Quality.GOOD
        return
    if isinstance(plain, float):
        assert math.isfinite(plain)
    if hint is not None:
        assert type(plain) is {"int": int, "float": float, "bool": bool, "string": str}[hint]
