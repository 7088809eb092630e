"""Validation of a serial device section: every problem with its full key path."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import ConfigCollector
from drivers.serial import SerialDeviceConfig, SerialDriver
from drivers.serial.config import EscapeError, unescape

HERE = Path(__file__).resolve().parents[3] / "drivers" / "serial"


def parse(sec, path="devices.scale1"):
    issues = ConfigCollector()
    config = SerialDriver.parse_config(sec, path, issues)
    return config, [(i.path, i.message) for i in issues.issues]


def test_a_scale_needs_only_port_and_parser():
    config, issues = parse({"type": "serial", "port": "/dev/ttyUSB0", "parser": "scale"})
    assert issues == []
    assert config == SerialDeviceConfig(port="/dev/ttyUSB0", parser="scale")
    assert (config.baudrate, config.bytesize, config.parity, config.stopbits) == \
        (9600, 8, "none", 1.0)
    assert config.terminator == b"\r\n" and config.command == "SI" and config.mode == "poll"
    assert (config.tag, config.unit_tag) == ("weight", "unit")


def test_a_scanner_gets_the_code_tag_and_no_command():
    config, issues = parse({"type": "serial", "port": "/dev/ttyACM0", "parser": "scanner",
                            "pattern": r"^(?P<kind>B|L)(?P<code>[0-9A-Z]{6,20})$"})
    assert issues == []
    assert config.tag == "code" and config.command is None and config.mode == "stream"
    assert config.compiled_pattern.fullmatch("L123456")


def test_a_streaming_scale_has_no_command_unless_given():
    config, _ = parse({"port": "/dev/x", "parser": "scale", "mode": "stream"})
    assert config.command is None
    config, _ = parse({"port": "/dev/x", "parser": "scale", "mode": "stream",
                       "command": "SIR"})
    assert config.command == "SIR"


@pytest.mark.parametrize("written, wanted", [
    ("\r\n", b"\r\n"), ("\\r\\n", b"\r\n"), ("\\r", b"\r"), ("\\x03", b"\x03"),
    (";", b";"), ("\\t", b"\t")])
def test_terminator_escapes_are_decoded(written, wanted):
    config, issues = parse({"port": "/dev/x", "parser": "scanner", "terminator": written})
    assert issues == [] and config.terminator == wanted


@given(st.text(alphabet=st.characters(blacklist_characters="\\"), max_size=20))
def test_unescape_leaves_text_without_backslashes_alone(text):
    assert unescape(text) == text


def test_unknown_escape_is_refused():
    with pytest.raises(EscapeError, match="unknown escape"):
        unescape("\\q")
    _, issues = parse({"port": "/dev/x", "parser": "scale", "terminator": "\\z"})
    assert [p for p, _ in issues] == ["devices.scale1.terminator"]


def test_keys_of_the_other_parser_are_refused_with_their_path():
    _, issues = parse({"port": "/dev/x", "parser": "scanner", "command": "SI",
                       "poll_interval": 1})
    assert issues == [("devices.scale1.command", 'only applies to parser = "scale"'),
                      ("devices.scale1.poll_interval", 'only applies to parser = "scale"')]
    _, issues = parse({"port": "/dev/x", "parser": "scale", "pattern": "x"})
    assert issues == [("devices.scale1.pattern", 'only applies to parser = "scanner"')]


def test_bad_patterns_are_explained():
    _, issues = parse({"port": "/dev/x", "parser": "scanner", "pattern": "(unclosed"})
    assert issues[0][0] == "devices.scale1.pattern"
    assert "not a valid regular expression" in issues[0][1]
    _, issues = parse({"port": "/dev/x", "parser": "scanner", "pattern": "(?P<code>\\d*)"})
    assert issues == [("devices.scale1.pattern", "must not match an empty line")]


def test_every_problem_is_reported_at_once():
    sec = {"type": "serial", "parser": "scale", "baudrate": 0, "bytesize": 9,
           "parity": "sometimes", "stopbits": 3, "terminator": "", "read_timeout": -1,
           "max_line": 2, "tag": "bad tag", "unit_tag": "weight", "mode": "burst",
           "poll_interval": 0, "command": "S\x01", "colour": "red"}
    config, issues = parse(sec)
    assert config is None
    assert {p for p, _ in issues} == {
        "devices.scale1.port", "devices.scale1.baudrate", "devices.scale1.bytesize",
        "devices.scale1.parity", "devices.scale1.stopbits", "devices.scale1.terminator",
        "devices.scale1.read_timeout", "devices.scale1.max_line", "devices.scale1.tag",
        "devices.scale1.unit_tag", "devices.scale1.mode", "devices.scale1.poll_interval",
        "devices.scale1.command", "devices.scale1.colour"}
    assert ("devices.scale1.port", "is required") in issues
    assert ("devices.scale1.parity",
            "must be one of none, even, odd, mark, space, got 'sometimes'") in issues


def test_missing_parser_is_required():
    _, issues = parse({"port": "/dev/x"})
    assert issues == [("devices.scale1.parser", "is required")]


def test_shipped_sample_and_readme_example_are_valid():
    sample = tomllib.loads((HERE / "sample.toml").read_text())
    readme = (HERE / "README.md").read_text()
    examples = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert examples
    for doc in [sample] + [tomllib.loads(e) for e in examples]:
        assert doc["devices"]
        for name, section in doc["devices"].items():
            config, issues = parse(section, f"devices.{name}")
            assert issues == [], name
            assert section["type"] == "serial"
            assert config.machine
