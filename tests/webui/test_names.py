"""One name pattern for devices, tags, rules, machines, sinks and users, enforced by `check-config` too.

The console and `linebridge check-config` share the validator, so a name the
API refuses is refused on the command line with its key path; the demo and
the drivers' samples, with names like `CNC-01`, stay valid.
"""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway import config as config_mod
from gateway.demo import demo_config_text

CLI = [sys.executable, "-m", "gateway.cli"]
ROOT = Path(__file__).resolve().parents[2]


def check_config(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "check-config", str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", ["CNC-01", "line2.press_3", "a", "9" * 64, "Press_1-A.b"])
def test_names_in_the_pattern(name: str) -> None:
    assert config_mod.name_problem(name) is None


@pytest.mark.parametrize("name", ["", "a b", "a/b", "<script>", "x" * 65, "ü", ".hidden", "-x", "_x", "a\n",
                                  "a\x00", 7])
def test_names_outside_the_pattern(name: object) -> None:
    assert config_mod.name_problem(name) is not None


@pytest.mark.parametrize("old, new, path", [
    ("[machines.CNC-01]", '[machines."CNC 01"]', "machines.CNC 01"),
    ("[rules.cnc01_parts]", '[rules."parts/cnc01"]', "rules.parts/cnc01"),
    ("[devices.cnc01]", '[devices."<script>"]', "devices.<script>"),
    ("[devices.cnc01.tags.parts]", '[devices.cnc01.tags."<img src=x>"]', "devices.cnc01.tags.<img src=x>"),
])
def test_check_config_refuses_a_name_outside_the_pattern(tmp_path: Path, old: str, new: str, path: str) -> None:
    text = demo_config_text()
    assert old in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(old, new), encoding="utf-8")
    out = check_config(bad)
    assert out.returncode == 1
    assert f"bad.toml: {path}: " in out.stderr and "names" in out.stderr, out.stderr   # (a driver may be stricter)


def test_the_demo_and_the_driver_samples_keep_valid_names(tmp_path: Path) -> None:
    demo = tmp_path / "demo.toml"
    demo.write_text(demo_config_text(), encoding="utf-8")
    assert check_config(demo).returncode == 0
    for sample in sorted((ROOT / "drivers").glob("*/sample.toml")):
        raw = tomllib.loads(sample.read_text(encoding="utf-8"))
        for name, section in (raw.get("devices") or {}).items():
            assert config_mod.name_problem(name) is None, (sample, name)
            for tag in (section.get("tags") or {}):
                assert config_mod.name_problem(tag) is None, (sample, name, tag)


@pytest.mark.parametrize("port, ok", [("/dev/null", True), ("/etc/shadow", False), ("/dev/../etc/shadow", False),
                                      ("relative/tty", False)])
def test_a_serial_port_is_a_device_under_dev(tmp_path: Path, port: str, ok: bool) -> None:
    text = demo_config_text() + f'\n[devices.scale1]\ntype = "serial"\nport = "{port}"\nparser = "regex"\n'
    problems = []
    try:
        config_mod.parse(text, source="t.toml")
    except config_mod.ConfigError as exc:
        problems = exc.problems
    assert any("devices.scale1.port: a serial port is a device under /dev" in p for p in problems) != ok, problems
