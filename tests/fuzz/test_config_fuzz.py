"""Fuzzing the configuration loader: any file gives a Config or a ConfigError naming the file.

Three sources of input: raw bytes (not UTF-8, NULs, truncated TOML), random
TOML documents, and the full sample configuration with one leaf or one table
replaced by something random (the path that reaches every section's
validator). Overlong values ride along: names, URLs and keys of a megabyte.
A few of these run through `linebridge check-config` as a subprocess, where a
traceback would be what a technician sees.
"""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from hypothesis import given, settings, strategies as st

from gateway import config as config_mod
from gateway.errors import ConfigError
from tests.fuzz import FUZZ, base_config

BASE = base_config()

_keys = st.text(min_size=1, max_size=12)
_leaves = st.one_of(
    st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["", "x" * 100_000, "\x00", "..", "../../etc/passwd", "mqtt://", "https://[::1",
                     "nonzero", "true", "*", "(", "0", "-1", "1e309"]),
    st.dates(), st.datetimes(), st.times())
_values = st.recursive(_leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(_keys, inner, max_size=4)),
                       max_leaves=12)


def _paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _paths(v, prefix + (i,))
    return out


PATHS = _paths(BASE)


def _replace(tree: Any, path: tuple, value: Any) -> Any:
    tree = copy.deepcopy(tree)
    node = tree
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return tree


def _load(text: str | bytes, tmp_path: Path) -> None:
    path = tmp_path / "linebridge.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    try:
        config_mod.load(path)
    except ConfigError as exc:
        assert exc.problems and all(p.startswith("linebridge.toml") for p in exc.problems), exc.problems


def _validate(raw: dict[str, Any]) -> None:
    """What `parse` does after tomllib: the sample configurations are too big to dump per example."""
    try:
        config_mod.validate(raw, "linebridge.toml")
    except ConfigError as exc:
        assert exc.problems and all(p.startswith("linebridge.toml: ") for p in exc.problems), exc.problems


def _dump(raw: dict[str, Any]) -> str | None:
    try:
        return tomlkit.dumps(raw)
    except Exception:   # a shape TOML cannot hold (tomlkit refuses it): not an input a file can have
        return None


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_give_a_config_or_an_error_naming_the_file(tmp_path_factory, data):
    _load(data, tmp_path_factory.mktemp("c"))


@settings(FUZZ, max_examples=100)
@given(st.dictionaries(_keys, _values, max_size=6))
def test_any_toml_document_gives_a_config_or_an_error_naming_the_file(tmp_path_factory, raw):
    text = _dump(raw)
    if text is not None:
        _load(text, tmp_path_factory.mktemp("c"))


@settings(FUZZ, max_examples=200)
@given(st.sampled_from(PATHS), _values)
def test_the_sample_config_with_any_value_replaced_gives_a_config_or_an_error(path, value):
    _validate(_replace(BASE, path, value))


@FUZZ
@given(st.sampled_from(PATHS), st.sampled_from(PATHS))
def test_the_sample_config_with_one_part_moved_gives_a_config_or_an_error(target, source):
    node: Any = BASE
    for part in source:
        node = node[part]
    _validate(_replace(BASE, target, copy.deepcopy(node)))


SAMPLES = {
    "not-utf8": b"\xff\xfe[gateway]\nid = \"a\"\n",
    "latin1": '[gateway]\nid = "Pr\u00e4ge"\n'.encode("latin-1"),
    "nested": ("a = " + "[" * 5000 + "]" * 5000 + "\n").encode(),
    "overlong-name": f'[gateway]\nid = "{"g" * 1_000_000}"\n'.encode(),
    "overlong-key": f'[devices.{"d" * 100_000}]\ntype = "modbus_tcp"\n'.encode(),
    "nul": b"[gateway]\x00id = 1\n",
    "truncated": b'[gateway]\nid = "gw\n[devices.a',
    "huge-int": b"[store]\nmax_bytes = 99999999999999999999999\n",
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_check_config_answers_a_broken_file_with_errors_not_a_traceback(tmp_path, name):
    path = tmp_path / f"{name}.toml"
    path.write_bytes(SAMPLES[name])
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, (done.stdout, done.stderr[-2000:])
    assert "Traceback" not in done.stderr and f"{name}.toml" in done.stderr, done.stderr[-2000:]
    assert len(done.stderr) < 20_000   # an overlong value is cut in the message, not echoed whole
