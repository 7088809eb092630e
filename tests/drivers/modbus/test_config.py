"""Validation of a modbus_tcp device section: every problem with its full key path."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from drivers.base import ConfigCollector
from drivers.modbus import ModbusDeviceConfig, ModbusDriver, TagConfig

HERE = Path(__file__).resolve().parents[3] / "drivers" / "modbus"


def section(**overrides):
    base = {"type": "modbus_tcp", "host": "127.0.0.1",
            "tags": {"parts": {"function": "holding", "address": 0, "type": "uint32"}}}
    base.update(overrides)
    return base


def parse(sec):
    issues = ConfigCollector()
    config = ModbusDriver.parse_config(sec, "devices.cnc01", issues)
    return config, [(i.path, i.message) for i in issues.issues]


def test_valid_section_gives_defaults():
    config, issues = parse(section())
    assert issues == []
    assert config == ModbusDeviceConfig(
        host="127.0.0.1", port=502, unit_id=1, poll_interval=1.0, timeout=2.0, machine=None,
        max_gap=8, tags={"parts": TagConfig(name="parts", function="holding", address=0,
                                            type="uint32", word_order="big", scale=1.0,
                                            offset=0.0)})


def test_address_out_of_range_names_the_key_path():
    sec = section(tags={"parts": {"function": "holding", "address": 70000, "type": "uint32"}})
    config, issues = parse(sec)
    assert config is None
    assert issues == [("devices.cnc01.tags.parts.address", "must be 0..65535, got 70000")]


def test_unknown_type_is_reported_with_choices():
    sec = section(tags={"parts": {"function": "holding", "address": 0, "type": "float64"}})
    _, issues = parse(sec)
    assert issues == [("devices.cnc01.tags.parts.type",
                       "must be one of uint16, int16, uint32, int32, got 'float64'")]


def test_missing_host_is_required():
    sec = section()
    del sec["host"]
    _, issues = parse(sec)
    assert issues == [("devices.cnc01.host", "is required")]


def test_32_bit_tag_must_end_within_the_address_space():
    sec = section(tags={"parts": {"function": "holding", "address": 65535, "type": "int32"}})
    _, issues = parse(sec)
    assert issues == [("devices.cnc01.tags.parts.address",
                       "int32 at 65535 would end at register 65536, beyond 65535")]


def test_coils_are_rejected_clearly_for_now():
    sec = section(tags={"door": {"function": "coils", "address": 0, "type": "uint16"}})
    _, issues = parse(sec)
    assert [p for p, _ in issues] == ["devices.cnc01.tags.door.function"]
    assert "not supported yet" in issues[0][1]


def test_every_problem_is_reported_at_once():
    sec = {"type": "modbus_tcp", "port": "502", "unit_id": 248, "poll_interval": 0,
           "timeout": -1, "max_gap": True, "colour": "red",
           "tags": {"a": {"function": "holding", "address": -1, "type": "uint16",
                          "word_order": "middle", "scale": 0, "adress": 3},
                    "b": "not a table"}}
    config, issues = parse(sec)
    assert config is None
    paths = {p for p, _ in issues}
    assert paths == {
        "devices.cnc01.colour", "devices.cnc01.host", "devices.cnc01.port",
        "devices.cnc01.unit_id", "devices.cnc01.poll_interval", "devices.cnc01.timeout",
        "devices.cnc01.max_gap", "devices.cnc01.tags.a.address",
        "devices.cnc01.tags.a.word_order", "devices.cnc01.tags.a.scale",
        "devices.cnc01.tags.a.adress", "devices.cnc01.tags.b"}
    assert ("devices.cnc01.unit_id", "must be 0..247, got 248") in issues
    assert ("devices.cnc01.port", "must be an integer, got '502'") in issues


def test_a_device_needs_tags():
    _, issues = parse(section(tags={}))
    assert issues == [("devices.cnc01.tags", "must define at least one tag")]


def test_shipped_sample_and_readme_example_are_valid():
    sample = tomllib.loads((HERE / "sample.toml").read_text())
    readme = (HERE / "README.md").read_text()
    [example] = re.findall(r"```toml\n(.*?)```", readme, re.S)
    for doc in (sample, tomllib.loads(example)):
        config, issues = parse(doc["devices"]["cnc01"])
        assert issues == []
        assert config.machine == "CNC-01"
        assert config.tags["parts"].type == "uint32"
