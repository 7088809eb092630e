"""Validation of a modbus_tcp device section: every problem with its full key path."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from hypothesis import given, settings, strategies as st

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
    sec = section(tags={"parts": {"function": "holding", "address": 0, "type": "float16"}})
    _, issues = parse(sec)
    assert issues == [("devices.cnc01.tags.parts.type",
                       "must be one of bool, uint16, int16, uint32, int32, uint64, int64, "
                       "float32, float64, string, got 'float16'")]


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


def test_function_spelled_as_in_a_manual_gets_a_hint():
    sec = section(tags={"door": {"function": "coils", "address": 0}})
    _, issues = parse(sec)
    assert issues == [("devices.cnc01.tags.door.function",
                       "must be one of coil, discrete, holding, input, got 'coils' "
                       "(did you mean 'coil'?)")]


def test_coils_and_discrete_inputs_are_bools():
    sec = section(tags={"door": {"function": "coil", "address": 0},
                        "estop": {"function": "discrete", "address": 7, "type": "bool"},
                        "bad": {"function": "coil", "address": 1, "type": "uint16"}})
    config, issues = parse(sec)
    assert issues == [("devices.cnc01.tags.bad.type",
                       "a coil is one bit: type must be bool, got 'uint16'")]
    sec["tags"].pop("bad")
    config, issues = parse(sec)
    assert issues == []
    assert config.tags["door"] == TagConfig(name="door", function="coil", address=0,
                                            type="bool")
    assert config.tags["estop"].count == 1 and not config.tags["estop"].writable


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


def test_shipped_sample_and_every_readme_example_are_valid():
    sample = tomllib.loads((HERE / "sample.toml").read_text())
    readme = (HERE / "README.md").read_text()
    examples = [tomllib.loads(text) for text in re.findall(r"```toml\n(.*?)```", readme, re.S)]
    assert len(examples) >= 3
    devices = 0
    for doc in (sample, *examples):
        for name, device in doc["devices"].items():
            issues = ConfigCollector()
            config = ModbusDriver.parse_config(device, f"devices.{name}", issues)
            assert issues.issues == [], (name, issues.issues)
            assert config.transport == device["type"]
            devices += 1
    transports = {d["type"] for doc in (sample, *examples) for d in doc["devices"].values()}
    assert transports == {"modbus_tcp", "modbus_rtu", "modbus_rtu_over_tcp"}
    cnc = ModbusDriver.parse_config(sample["devices"]["cnc01"], "devices.cnc01",
                                    ConfigCollector())
    assert cnc.machine == "CNC-01" and cnc.tags["parts"].type == "uint32"
    assert devices >= 5


def rtu(**overrides):
    base = {"type": "modbus_rtu", "port": "/dev/serial/by-id/usb-FTDI-if00-port0",
            "unit_id": 7, "tags": {"w": {"function": "holding", "address": 0,
                                         "type": "uint16"}}}
    base.update(overrides)
    return base


def test_rtu_section_gives_serial_defaults():
    config, issues = parse(rtu())
    assert issues == []
    assert (config.transport, config.host, config.port, config.unit_id) == (
        "modbus_rtu", None, "/dev/serial/by-id/usb-FTDI-if00-port0", 7)
    assert (config.baudrate, config.parity, config.stopbits, config.bytesize) == (19200, "N", 1, 8)
    assert (config.backend, config.mode, config.retry_period) == ("pymodbus", "rtu", 10.0)
    assert config.close_port_after_each_call is False
    assert config.bus_key == "serial:/dev/serial/by-id/usb-FTDI-if00-port0"


def test_each_transport_accepts_only_its_own_keys():
    _, issues = parse(section(baudrate=9600, retry_period=5))
    assert issues == [
        ("devices.cnc01.baudrate", "is not used by modbus_tcp (only by modbus_rtu)"),
        ("devices.cnc01.retry_period",
         "is not used by modbus_tcp (only by modbus_rtu and modbus_rtu_over_tcp)")]
    _, issues = parse(rtu(host="10.0.0.5"))
    assert issues == [("devices.cnc01.host",
                       "is not used by modbus_rtu (only by modbus_tcp and modbus_rtu_over_tcp)")]
    _, issues = parse(section(type="modbus_rtu_over_tcp", parity="E", retry_period=2.5))
    assert issues == [("devices.cnc01.parity",
                       "is not used by modbus_rtu_over_tcp (only by modbus_rtu)")]


def test_rtu_needs_a_port_path_and_a_unit_that_can_answer():
    _, issues = parse(rtu(port=1, unit_id=0))
    assert issues == [("devices.cnc01.port", "must be a string, got 1"),
                      ("devices.cnc01.unit_id", "must be 1..247, got 0")]
    sec = rtu()
    del sec["port"]
    _, issues = parse(sec)
    assert issues == [("devices.cnc01.port", "is required")]


def test_serial_settings_are_checked():
    _, issues = parse(rtu(baudrate=10, parity="X", stopbits=3, bytesize=6, mode="tcp",
                          backend="libmodbus", retry_period=-1,
                          close_port_after_each_call=True))
    assert {p for p, _ in issues} == {
        f"devices.cnc01.{k}" for k in ("baudrate", "parity", "stopbits", "bytesize", "mode",
                                       "backend", "retry_period", "close_port_after_each_call")}
    _, issues = parse(rtu(close_port_after_each_call=True))
    assert issues == [("devices.cnc01.close_port_after_each_call",
                       'only with backend = "minimalmodbus"')]
    config, issues = parse(rtu(backend="minimalmodbus", mode="ascii", bytesize=7, parity="E",
                               close_port_after_each_call=True, retry_period=0))
    assert issues == [] and config.mode == "ascii" and config.retry_period == 0


def test_tag_shape_rules_name_the_key():
    tags = {
        "flag": {"function": "holding", "address": 0, "type": "bool"},
        "word_bit": {"function": "holding", "address": 0, "type": "uint16", "bit": 3},
        "name": {"function": "holding", "address": 0, "type": "string"},
        "len_on_int": {"function": "holding", "address": 0, "type": "uint16", "length": 2},
        "scaled_text": {"function": "holding", "address": 0, "type": "string", "length": 2,
                        "scale": 2},
        "coil_bit": {"function": "coil", "address": 0, "bit": 1},
        "write_input": {"function": "input", "address": 0, "type": "uint16", "writable": True},
        "write_bit": {"function": "holding", "address": 0, "bit": 1, "writable": True},
        "huge": {"function": "holding", "address": 65533, "type": "float64"},
    }
    _, issues = parse(section(tags=tags))
    assert issues == [
        ("devices.cnc01.tags.flag.bit",
         "is required for a bool read from a register (0..15, 0 = least significant bit)"),
        ("devices.cnc01.tags.word_bit.bit", "only for type bool, got type 'uint16'"),
        ("devices.cnc01.tags.name.length",
         "is required for a string (registers, 2 characters each)"),
        ("devices.cnc01.tags.len_on_int.length", "only for type string, got type 'uint16'"),
        ("devices.cnc01.tags.scaled_text.scale", "only for numeric types, got type 'string'"),
        ("devices.cnc01.tags.coil_bit.bit",
         "only for a bool read from a holding or input register; a coil is already one bit"),
        ("devices.cnc01.tags.write_input.writable",
         "input registers are read-only; only coil and holding tags can be writable"),
        ("devices.cnc01.tags.write_bit.writable",
         "one bit of a register cannot be written on its own (read-modify-write is not "
         "atomic); write the whole register as a uint16 tag, or use a coil"),
        ("devices.cnc01.tags.huge.address",
         "float64 at 65533 would end at register 65536, beyond 65535"),
    ]


def test_a_tag_larger_than_max_registers_is_refused():
    sec = section(max_registers=16, tags={
        "serial": {"function": "holding", "address": 0, "type": "string", "length": 20}})
    _, issues = parse(sec)
    assert issues == [("devices.cnc01.tags.serial", "needs 20 registers but max_registers is 16")]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(
    st.sampled_from(["type", "host", "port", "unit_id", "timeout", "baudrate", "parity",
                     "backend", "retry_period", "max_gap", "tags", "colour"]),
    st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=True),
              st.sampled_from(["modbus_tcp", "modbus_rtu", "modbus_rtu_over_tcp", "", "E",
                               "/dev/ttyUSB0", "minimalmodbus"]),
              st.dictionaries(st.sampled_from(["t1", "t 2"]), st.dictionaries(
                  st.sampled_from(["function", "address", "type", "bit", "length", "scale",
                                   "writable", "word_order"]),
                  st.one_of(st.integers(-2, 70000), st.booleans(),
                            st.sampled_from(["coil", "holding", "input", "bool", "string",
                                             "float32", "little"])))))))
def test_any_section_is_either_valid_or_reported_never_raises(sec):
    sec = {k: v for k, v in sec.items() if v is not None}
    config, issues = parse(sec)
    assert (config is None) == bool(issues)
    assert all(path.startswith("devices.cnc01") for path, _ in issues)
    if config is not None:
        for tag in config.tags.values():
            assert tag.count >= 1 and tag.end <= 65535
