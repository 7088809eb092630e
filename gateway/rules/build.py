"""Which rule class serves which rule configuration: the supervisor's one place to build rules."""
from __future__ import annotations

from typing import Any

from gateway.config import AlarmRuleConfig, CounterRuleConfig
from gateway.rules import Rule
from gateway.rules.alarm import AlarmRule
from gateway.rules.config import (EdgeRuleConfig, MachineStateRuleConfig, RecordRuleConfig, ScanRuleConfig,
                                  ThresholdRuleConfig, WeightRuleConfig)
from gateway.rules.counter import CounterRule
from gateway.rules.edge import ConditionRule
from gateway.rules.machine_state import MachineStateRule
from gateway.rules.record import RecordRule
from gateway.rules.scan import ScanRule
from gateway.rules.threshold import ThresholdRule
from gateway.rules.weight import WeightRule

CLASSES: dict[type, Any] = {
    CounterRuleConfig: CounterRule, AlarmRuleConfig: AlarmRule, EdgeRuleConfig: ConditionRule,
    ThresholdRuleConfig: ThresholdRule, WeightRuleConfig: WeightRule, ScanRuleConfig: ScanRule,
    MachineStateRuleConfig: MachineStateRule, RecordRuleConfig: RecordRule,
}


def build(cfg: Any, gateway: str, machine: str) -> Rule:
    """The rule object for one validated rule configuration."""
    return CLASSES[type(cfg)](cfg, gateway, machine)
