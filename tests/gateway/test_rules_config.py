"""Configuration of the edge, threshold, weight and scan rules: models, and errors with key paths."""
from __future__ import annotations

import pytest

from gateway import config as config_mod
from gateway.config import AlarmRuleConfig
from gateway.errors import ConfigError
from gateway.rules.config import EdgeRuleConfig, ScanRuleConfig, ThresholdRuleConfig, WeightRuleConfig

BASE = """
[gateway]
id = "gw"
[devices.plc]
type = "modbus_tcp"
host = "127.0.0.1"
machine = "CNC-01"
[devices.plc.tags.door]
function = "coil"
address = 0
type = "bool"
[devices.plc.tags.wear]
function = "holding"
address = 1
type = "uint16"
[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1"
"""


def _rule(body: str):
    return config_mod.parse(BASE + "[rules.r]\n" + body).rules["r"]


def _errors(body: str) -> str:
    with pytest.raises(ConfigError) as err:
        config_mod.parse(BASE + "[rules.r]\n" + body)
    return str(err.value)


def test_each_rule_type_reads_into_its_model():
    assert _rule('type = "edge"\ndevice = "plc"\ntag = "door"\non = true\nemit = "both"\ncode = 12\n'
                 'debounce = 2\nmin_duration = 30\nrepeat_suppress = 600\n') == EdgeRuleConfig(
        "r", "plc", "door", "true", True, True, 12, 2.0, 30.0, 600.0)
    assert _rule('type = "alarm"\ndevice = "plc"\ntag = "wear"\ndebounce = 1.5\n') == AlarmRuleConfig(
        "r", "plc", "wear", True, debounce=1.5)
    assert _rule('type = "threshold"\ndevice = "plc"\ntag = "wear"\nabove = 900\nclear_below = 100\n') == \
        ThresholdRuleConfig("r", "plc", "wear", high=900.0, low=100.0)
    assert _rule('type = "weight"\ndevice = "plc"\ntag = "wear"\nmaterial = "PP"\nmin_change = 0.2\n') == \
        WeightRuleConfig("r", "plc", "wear", material="PP", min_change=0.2)
    assert _rule('type = "scan"\ndevice = "plc"\ntag = "door"\nwork_order = "WO"\noperator = "B"\n') == \
        ScanRuleConfig("r", "plc", "door", (("work_order", "WO"), ("operator", "B")))


@pytest.mark.parametrize("body, expected", [
    ('type = "edge"\ndevice = "plc"\ntag = "door"\non = "true"\nemit = "alarm"\n',
     "rules.r.code: is required when emit = 'alarm'"),
    ('type = "edge"\ndevice = "plc"\ntag = "door"\ndebounce = -1\n', "rules.r.debounce: must be 0..86400"),
    ('type = "edge"\ndevice = "plc"\ntag = "door"\nemit = "loud"\n', "rules.r.emit: must be one of"),
    ('type = "alarm"\ndevice = "plc"\ntag = "wear"\nrepeat_suppress = "1m"\n',
     "rules.r.repeat_suppress: must be a number"),
    ('type = "threshold"\ndevice = "plc"\ntag = "wear"\nhigh = 10\n', "rules.r.low: is required"),
    ('type = "threshold"\ndevice = "plc"\ntag = "wear"\nhigh = 10\nlow = 20\n', "rules.r.low: must be below high"),
    ('type = "threshold"\ndevice = "plc"\ntag = "wear"\nhigh = 10\nabove = 20\nlow = 1\n',
     "rules.r.above: set high or above, not both"),
    ('type = "threshold"\ndevice = "plc"\ntag = "wear"\nemit = "quality_result"\n',
     "rules.r.high: a quality_result needs at least one limit"),
    ('type = "weight"\ndevice = "plc"\ntag = "wear"\n', "rules.r.material: is required"),
    ('type = "weight"\ndevice = "plc"\ntag = "wear"\nmode = "fill"\n', "rules.r.high: a fill check needs"),
    ('type = "weight"\ndevice = "plc"\ntag = "wear"\nmaterial = "PP"\nmin_change = -2\n',
     "rules.r.min_change: must be 0.."),
    ('type = "scan"\ndevice = "plc"\ntag = "door"\n', "rules.r: a scan rule needs a pattern"),
    ('type = "scan"\ndevice = "plc"\ntag = "door"\nlot = "L("\n', "rules.r.lot: not a valid regular expression"),
    ('type = "scan"\ndevice = "plc"\ntag = "door"\nlot = "L"\nbatch = "X"\n', "rules.r.batch: unknown key"),
    ('type = "gauge"\ndevice = "plc"\ntag = "door"\n', "rules.r.type: must be one of"),
])
def test_rule_errors_name_their_key_path(body, expected):
    assert expected in _errors(body)


@pytest.mark.parametrize("tags", ["5", "true", '["a", 3]', '"abc"'])
def test_a_devices_tags_of_the_wrong_shape_is_an_error_naming_it_not_a_crash(tags):
    text = f"""
[gateway]
id = "gw"
[devices.plc]
type = "modbus_tcp"
host = "127.0.0.1"
tags = {tags}
[rules.r]
type = "counter"
device = "plc"
tag = "a"
[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1"
"""
    with pytest.raises(ConfigError) as exc:
        config_mod.parse(text)
    assert any("devices.plc.tags: must be a table" in p for p in exc.value.problems), exc.value.problems
