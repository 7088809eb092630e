"""Fuzzing config edits as the web UI makes them: any JSON table for any section is saved or refused.

The console's API hands `webui.configfile.ConfigFile` whatever JSON a client
sent: nulls, nested lists, huge integers, any name. Each change must end as a
new valid configuration on disk or as `ConfigRejected` with the problems (a
400 for the client), never another exception (a 500), and a refused change
leaves the file as it was.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from gateway import config as config_mod
from tests.fuzz import FUZZ, base_config
from webui.configfile import ConfigFile, ConfigRejected

# JSON null is left out: it crashes the renderer (test_a_null_in_a_json_table_is_refused_not_a_500)
_json = st.recursive(
    st.one_of(st.booleans(), st.integers(), st.integers(-(10**30), 10**30),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
              st.sampled_from(["********", "", "x" * 10_000, "modbus_tcp", "counter", "odoo", "mqtt"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=15)
_names = st.one_of(st.sampled_from(["cnc01", "odoo", "CNC-01", "new", "cnc01_parts", "a.b", "", " ", "x" * 300,
                                    "ü", "[x]", '"', "a\nb"]), st.text(max_size=10))
BASE = base_config()


def _section_tables() -> st.SearchStrategy[dict[str, Any]]:
    """Real sections of the sample configuration, with one key set to something random."""
    sections = [(kind, name, table) for kind in ("devices", "machines", "rules", "sinks")
                for name, table in BASE[kind].items()]
    return st.sampled_from(sections).flatmap(lambda item: st.tuples(
        st.just(item[0]), st.just(item[1]),
        st.one_of(st.just(item[2]), st.sampled_from(sorted(item[2]) or ["x"]).flatmap(
            lambda key: _json.map(lambda v: {**item[2], key: v})))))


@pytest.fixture(scope="module")
def console_file(tmp_path_factory) -> ConfigFile:
    root = tmp_path_factory.mktemp("webui")
    path = root / "linebridge.toml"
    path.write_text(resources.files("gateway").joinpath("demo.toml").read_text(encoding="utf-8"), encoding="utf-8")
    return ConfigFile(path, root / "state")


def _change(cf: ConfigFile, kind: str, name: str, table: Any) -> None:
    before = cf.text()
    try:
        cfg = cf.put(kind, name, table, "fuzz")[0]
    except ConfigRejected as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        assert cf.text() == before
        return
    assert isinstance(cfg, config_mod.Config)
    config_mod.parse(cf.text(), "linebridge.toml")   # what was saved loads again
    cf.path.write_text(before, encoding="utf-8")    # next example starts from the demo again


@settings(FUZZ, max_examples=100)
@given(st.sampled_from(["devices", "machines", "rules", "sinks", "shifts", "gateway", "store", "webui", ""]),
       _names, st.one_of(st.none(), _json, st.dictionaries(st.text(max_size=8), _json, max_size=5)))
def test_any_json_for_any_section_is_saved_or_refused(console_file, kind, name, table):
    _change(console_file, kind, name, table)


@settings(FUZZ, max_examples=100)
@given(_section_tables())
def test_any_key_of_a_real_section_set_to_any_json_is_saved_or_refused(console_file, change):
    kind, name, table = change
    _change(console_file, kind, name, table)


@FUZZ
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_any_text_in_the_raw_editor_is_saved_or_refused(console_file, text):
    before = console_file.text()
    try:
        console_file.replace(text, "fuzz")
    except ConfigRejected as exc:
        assert exc.problems and console_file.text() == before
        return
    console_file.path.write_text(before, encoding="utf-8")


def test_a_null_in_a_json_table_is_refused_not_a_500(console_file):
    before = console_file.text()
    with pytest.raises(ConfigRejected) as refused:
        console_file.put("machines", "CNC-01", {"work_center": None, "tags": [1, None]}, "fuzz")
    assert refused.value.problems == ["machines.CNC-01.work_center: TOML has no null; leave the key out instead",
                                      "machines.CNC-01.tags[1]: TOML has no null; leave the key out instead"]
    assert console_file.text() == before


def test_the_fuzzed_file_is_still_the_demo(console_file):
    assert "demo-gw" in Path(console_file.path).read_text(encoding="utf-8")
