"""Configuration of the OPC-UA driver: every problem reported with its key path."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from drivers.base import ConfigCollector
from drivers.opcua import OpcUaDeviceConfig, OpcUaDriver

FOLDER = Path(__file__).resolve().parents[3] / "drivers" / "opcua"
PATH = "devices.press1"


def check(section):
    issues = ConfigCollector()
    config = OpcUaDriver.parse_config(section, PATH, issues)
    problems: dict[str, str] = {}
    for issue in issues.issues:
        problems[issue.path] = "; ".join(filter(None, [problems.get(issue.path), issue.message]))
    return config, problems


def minimal(**extra):
    return {"type": "opcua", "endpoint": "opc.tcp://10.0.0.5:4840/press",
            "tags": {"parts": {"node": "ns=2;s=Machine1.Counter"}}} | extra


def test_minimal_config_gets_safe_defaults():
    config, problems = check(minimal())
    assert problems == {}
    assert isinstance(config, OpcUaDeviceConfig)
    assert (config.mode, config.timeout, config.publishing_interval, config.poll_interval) == (
        "subscribe", 5.0, 0.5, 1.0)
    assert (config.security_policy, config.security_mode) == ("None", "None")
    tag = config.tags["parts"]
    assert tag.node.node_id.to_string() == "ns=2;s=Machine1.Counter"
    assert (tag.sampling_interval, tag.deadband, tag.queue_size, tag.type) == (None, None, 10, None)


@pytest.mark.parametrize("node, message", [
    ("ns=x;i=5", "is not a valid OPC-UA node id"),
    ("Machine1.Counter", "is not a valid OPC-UA node id"),
    ("ns=2;i=abc", "is not a valid OPC-UA node id"),
    ("", "must not be empty"),
    ("ns=2;s=", "has an empty identifier"),
    ("ns=2;i=4294967296", "outside 0..4294967295"),
    ("ns=70000;i=1", "namespace index 70000 is outside 0..65535"),
])
def test_bad_node_id_is_a_config_error_with_its_key_path(node, message):
    config, problems = check(minimal(tags={"parts": {"node": node}}))
    assert config is None
    assert list(problems) == [f"{PATH}.tags.parts.node"]
    assert message in problems[f"{PATH}.tags.parts.node"]


def test_node_ids_by_namespace_uri_and_other_identifier_types_are_accepted():
    config, problems = check(minimal(tags={
        "a": {"node": "nsu=urn:acme:press;s=Recipe.Active"},
        "b": {"node": "ns=3;i=1001"},
        "c": {"node": "ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a"},
    }))
    assert problems == {}
    assert config.tags["a"].node.namespace_uri == "urn:acme:press"
    assert config.tags["a"].node.resolve(["http://opcfoundation.org/UA/", "urn:x",
                                          "urn:acme:press"]).to_string() == "ns=2;s=Recipe.Active"
    assert config.tags["a"].node.resolve(["http://opcfoundation.org/UA/"]) is None


def test_every_problem_is_reported_with_its_key_path(tmp_path):
    section = {
        "type": "opcua", "endpoint": "http://10.0.0.5:4840", "mode": "push",
        "publishing_interval": 500, "timeout": 0, "security_policy": "None",
        "security_mode": "Sign", "certificate": str(tmp_path / "missing.der"),
        "password": "x", "colour": "red",
        "tags": {
            "bad name": {"node": "i=85"},
            "flag": {"node": "ns=2;s=Flag", "type": "bool", "deadband": 1.0},
            "both": {"node": "ns=2;s=Both", "deadband": 1.0, "deadband_percent": 5.0},
            "neg": {"node": "ns=2;s=Neg", "deadband": -1.0, "queue_size": 0},
            "odd": {"node": "ns=2;s=Odd", "type": "double", "sampling": 1},
            "fast": {"node": "ns=2;s=Fast", "sampling_interval": 250},
        },
    }
    config, problems = check(section)
    assert config is None
    assert set(problems) == {
        f"{PATH}.endpoint", f"{PATH}.mode", f"{PATH}.publishing_interval", f"{PATH}.timeout",
        f"{PATH}.security_mode", f"{PATH}.certificate", f"{PATH}.password", f"{PATH}.colour",
        f"{PATH}.tags.bad name", f"{PATH}.tags.flag.deadband",
        f"{PATH}.tags.both.deadband_percent", f"{PATH}.tags.neg.deadband",
        f"{PATH}.tags.neg.queue_size", f"{PATH}.tags.odd.type", f"{PATH}.tags.odd.sampling",
        f"{PATH}.tags.fast.sampling_interval",
    }
    assert "opc.tcp://" in problems[f"{PATH}.endpoint"]
    assert "did you mean 0.5 for 500 ms?" in problems[f"{PATH}.publishing_interval"]
    assert "file not found" in problems[f"{PATH}.certificate"]
    assert problems[f"{PATH}.password"] == "needs a username"
    assert "numbers only" in problems[f"{PATH}.tags.flag.deadband"]


def test_security_and_login_rules(tmp_path):
    cert = tmp_path / "c.der"
    cert.write_bytes(b"x")
    _, problems = check(minimal(security_policy="Basic256Sha256", security_mode="None",
                                certificate=str(cert), username="op",
                                password="a", password_env="B"))
    assert set(problems) == {f"{PATH}.security_mode", f"{PATH}.private_key",
                             f"{PATH}.password_env"}
    config, problems = check(minimal(security_policy="Basic256Sha256", username="op",
                                     password_env="OPCUA_PW"))
    assert problems == {}
    assert config.security_mode == "SignAndEncrypt"  # the safe default once a policy is set
    _, problems = check(minimal(endpoint="opc.tcp://op:pw@10.0.0.5:4840", username="op"))
    assert set(problems) == {f"{PATH}.endpoint", f"{PATH}.username"}


def test_sample_and_readme_example_are_valid():
    sample = tomllib.loads((FOLDER / "sample.toml").read_text())
    readme = (FOLDER / "README.md").read_text()
    example = re.search(r"## Complete example\s+```toml\n(.*?)```", readme, re.S).group(1)
    for doc in (sample, tomllib.loads(example)):
        for name, section in doc["devices"].items():
            config, problems = check(section)
            assert problems == {}, (name, problems)
            assert config.tags
