"""Fuzzing what happens to a sample after the driver: every rule, the event envelope, its signature.

Any good sample value reaches every rule type; each answers with events whose
envelope can be signed (canonical JSON: no NaN, no infinity) and verified, or
with an `implausible` event, never an exception. `verify` answers any JSON
document, and any change to a signed envelope, with a reason, never a crash
and never a pass.
"""
from __future__ import annotations

import copy
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, strategies as st

from drivers.base import Quality, Sample
from gateway.config import AlarmRuleConfig, CounterRuleConfig
from gateway.events import Event, event_id
from gateway.rules.build import build
from gateway.rules.config import (EdgeRuleConfig, MachineStateRuleConfig, ScanRuleConfig, ThresholdRuleConfig,
                                  WeightRuleConfig)
from gateway.signing import DeviceKey, canonical, verify
from tests.fuzz import FUZZ

KEY = DeviceKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
OTHER = DeviceKey(Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))

RULES = [
    CounterRuleConfig("parts", "d", "t", "production", 32, "zero", 2**30),
    CounterRuleConfig("parts16", "d", "t", "scrap", 16, "baseline", 2**14, max_rate=5.0, poll_interval=1.0),
    AlarmRuleConfig("alarm", "d", "t", debounce=0.5, min_duration=1.0, repeat_suppress=2.0),
    EdgeRuleConfig("edge", "d", "t", on="nonzero", alarm=True),
    EdgeRuleConfig("edge_text", "d", "t", on="RUN"),
    EdgeRuleConfig("edge_num", "d", "t", on=3.5, code=7),
    ThresholdRuleConfig("due", "d", "t", high=100.0, low=80.0, code=9),
    ThresholdRuleConfig("q", "d", "t", emit="quality_result", high=10.1, low=9.9, on_change=True),
    WeightRuleConfig("hopper", "d", "t", min_change=0.5),
    WeightRuleConfig("fill", "d", "t", mode="fill", min_weight=10.0, low=495.0, high=505.0),
    ScanRuleConfig("scan", "d", "t", (("operator", r"B(?P<value>\d+)"), ("lot", r"L.*"))),
    MachineStateRuleConfig("run", "d", "t"),
    MachineStateRuleConfig("done", "d", "t", emit="finish"),
]

_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(10**400), 10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.binary(max_size=4),
    st.lists(st.integers(), max_size=2), st.sampled_from(["B123", "L-7", "RUN", "", " ", "\x00"]))
_samples = st.lists(st.tuples(_values, st.floats(0, 4e9), st.sampled_from(list(Quality)),
                              st.one_of(st.none(), st.text(max_size=30))), max_size=12)


@FUZZ
@given(st.sampled_from(RULES), _samples)
def test_any_sample_sequence_through_any_rule_gives_signable_events_or_a_refusal(cfg, samples):
    rule = build(cfg, "gw", "M")
    state = rule.load_state(None)
    for value, ts, quality, origin in samples:
        sample = Sample("d", "t", value if quality is Quality.GOOD else None, quality, ts, origin=origin)
        before = state
        events, state = rule.apply(state, sample)
        raw = state.to_bytes() if state is not None else None
        assert rule.load_state(raw) == state            # the state survives the store
        for event in events:
            envelope = KEY.sign(event.to_dict())          # canonical JSON: raises on NaN/inf
            assert verify(envelope, KEY.public) is None
            if event.kind == "implausible":
                assert state == before and event.data["reason"]
            if "quantity" in event.data:
                assert event.data["quantity"] >= 0


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=20)


@FUZZ
@given(st.one_of(_json, st.fixed_dictionaries({"sig": _json}, optional={"id": _json, "data": _json}),
                 st.fixed_dictionaries({"sig": st.fixed_dictionaries(
                     {"alg": st.sampled_from(["ed25519", "Ed25519", "none"]), "kid": st.just(KEY.kid)},
                     optional={"value": st.one_of(st.text(max_size=90), st.binary(max_size=64).map(
                         lambda b: __import__("base64").b64encode(b).decode()))})},
                     optional={"data": _json})))
def test_verify_answers_any_document_with_a_reason(document):
    result = verify(document, KEY.public)
    assert result is None or isinstance(result, str)
    assert result is not None   # nothing unsigned by the key verifies


def _signed(data: dict[str, Any]) -> dict[str, Any]:
    event = Event(id=event_id("gw", "d/t", "1"), kind="production", ts="2026-11-23T07:00:00.000Z", gateway="gw",
                  source={"device": "d", "tag": "t"}, data=data, context={"machine": "M"})
    return KEY.sign(event.to_dict())


@FUZZ
@given(st.dictionaries(st.text(max_size=6), _json.filter(lambda v: _finite(v)), max_size=4), st.data())
def test_any_change_to_a_signed_envelope_is_caught(data, draw):
    envelope = _signed(data)
    assert verify(json.loads(json.dumps(envelope)), KEY.public) is None
    assert verify(envelope, OTHER.public) is not None
    key = draw.draw(st.sampled_from(sorted(k for k in envelope if k not in ("seq", "sig"))))
    changed = copy.deepcopy(envelope)
    changed[key] = draw.draw(_json.filter(lambda v: v != envelope[key] or type(v) is not type(envelope[key])))
    if canonical_or_none(changed) != canonical_or_none(envelope):
        assert verify(changed, KEY.public) is not None


def canonical_or_none(envelope: dict[str, Any]) -> bytes | None:
    try:
        return canonical(envelope)
    except ValueError:
        return None


def _finite(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
        return True
    except ValueError:
        return False
