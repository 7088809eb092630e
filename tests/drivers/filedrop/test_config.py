"""Validation of a filedrop device section: every problem with its full key path."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from drivers.base import ConfigCollector
from drivers.filedrop import FileDropConfig, FileDropDriver
from drivers.filedrop.watcher import Watcher, free_name

HERE = Path(__file__).resolve().parents[3] / "drivers" / "filedrop"


def parse(sec, path="devices.press2"):
    issues = ConfigCollector()
    config = FileDropDriver.parse_config(sec, path, issues)
    return config, [(i.path, i.message) for i in issues.issues]


def minimal(**extra):
    return {"type": "filedrop", "directory": "/srv/exports", "timestamp_column": "time",
            "columns": {"parts": "Parts"}, **extra}


def test_minimal_section_gets_safe_defaults():
    config, issues = parse(minimal())
    assert issues == []
    assert config == FileDropConfig(directory="/srv/exports", columns={"parts": "Parts"},
                                    timestamp_column="time")
    assert config.pattern == "*.csv" and config.stable_seconds == 5.0
    assert "*.part" in config.ignore and "*.tmp" in config.ignore
    assert config.type_of("parts") == "str" and config.timezone == "UTC"


def test_every_problem_is_reported_at_once():
    sec = {"type": "filedrop", "pattern": "sub/*.csv", "ignore": ["*.tmp", 3],
           "stable_seconds": -1, "poll_interval": 0, "delimiter": ";;", "encoding": "klingon",
           "decimal": ",", "columns": {"bad tag": "x", "parts": ""},
           "types": {"qty": "int", "parts": "decimal"}, "timestamp_format": "no directives",
           "timezone": "Mars/Olympus", "max_file_mb": 0, "colour": "red"}
    config, issues = parse(sec)
    assert config is None
    assert {p for p, _ in issues} == {
        "devices.press2.directory", "devices.press2.pattern", "devices.press2.ignore[1]",
        "devices.press2.stable_seconds", "devices.press2.poll_interval",
        "devices.press2.delimiter", "devices.press2.encoding",
        "devices.press2.columns.bad tag", "devices.press2.columns.parts",
        "devices.press2.types.qty", "devices.press2.types.parts",
        "devices.press2.timestamp_column", "devices.press2.timestamp_format",
        "devices.press2.timezone", "devices.press2.max_file_mb", "devices.press2.colour"}
    assert ("devices.press2.types.qty", "tag 'qty' is not in columns") in issues
    assert ("devices.press2.timezone", "unknown time zone 'Mars/Olympus' "
            "(an IANA name such as 'Europe/Berlin' or 'UTC')") in issues


def test_decimal_comma_needs_another_delimiter():
    _, issues = parse(minimal(decimal=","))
    assert issues == [("devices.press2.decimal",
                       "a decimal comma needs another delimiter (e.g. ';')")]
    _, issues = parse(minimal(decimal=",", delimiter=";"))
    assert issues == []


def test_a_timestamp_format_with_an_offset_is_accepted():
    config, issues = parse(minimal(timestamp_format="%Y-%m-%d %H:%M:%S%z"))
    assert issues == [] and config.timestamp_format == "%Y-%m-%d %H:%M:%S%z"


def test_pattern_and_ignore_decide_which_names_are_wanted():
    config, _ = parse(minimal(pattern="line*.csv"))
    watcher = Watcher(config, lambda: 0.0, lambda: 0.0)
    assert watcher.wanted("line1.csv")
    assert not watcher.wanted("line1.csv.part") and not watcher.wanted("other.csv")
    config, _ = parse(minimal(pattern="*", ignore=["*.part"]))
    watcher = Watcher(config, lambda: 0.0, lambda: 0.0)
    assert watcher.wanted("x.tmp") and not watcher.wanted("x.part")


def test_free_name_never_reuses_a_taken_name(tmp_path):
    assert free_name(tmp_path, "a.csv") == tmp_path / "a.csv"
    (tmp_path / "a.csv").touch()
    (tmp_path / "a.1.csv").touch()
    assert free_name(tmp_path, "a.csv") == tmp_path / "a.2.csv"
    (tmp_path / "b.csv.reason.txt").touch()
    assert free_name(tmp_path, "b.csv", ".reason.txt") == tmp_path / "b.1.csv"
    (tmp_path / "README").touch()
    assert free_name(tmp_path, "README") == tmp_path / "README.1"


def test_shipped_sample_and_readme_example_are_valid():
    sample = tomllib.loads((HERE / "sample.toml").read_text())
    readme = (HERE / "README.md").read_text()
    examples = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert examples
    for doc in [sample] + [tomllib.loads(e) for e in examples]:
        for name, section in doc["devices"].items():
            config, issues = parse(section, f"devices.{name}")
            assert issues == [], name
            assert section["type"] == "filedrop" and config.machine
