"""The configuration file as the console edits it: sections, validation, secrets, versions, history, atomicity."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import pytest
import tomlkit

from webui.configfile import REDACTED, ConfigConflict, ConfigFile, ConfigRejected, version_of

SECRET = "odoo-api-key-7f3a"


def _demo_text() -> str:
    text = resources.files("gateway").joinpath("demo.toml").read_text(encoding="utf-8")
    assert 'api_key = "admin"' in text
    return text.replace('api_key = "admin"', f'api_key = "{SECRET}"')


@pytest.fixture
def cf(tmp_path: Path) -> ConfigFile:
    path = tmp_path / "etc" / "linebridge.toml"
    path.parent.mkdir()
    path.write_text(_demo_text(), encoding="utf-8")
    return ConfigFile(path, tmp_path / "state")


def _data(cf: ConfigFile) -> dict:
    return tomlkit.parse(cf.text()).unwrap()


def _temp_files(cf: ConfigFile) -> list[Path]:
    return [p for d in (cf.path.parent, cf.history_dir) for p in d.iterdir() if p.name.endswith(".tmp")]


# -- sections ---------------------------------------------------------------------------------

def test_putting_a_section_keeps_comments_elsewhere(cf: ConfigFile) -> None:
    before = cf.text()
    device = cf.section("devices", "cnc01")
    assert device is not None
    cfg, entry = cf.put("devices", "cnc01", dict(device, poll_interval=0.25), who="tech")
    after = cf.text()
    assert cfg.devices["cnc01"].config.poll_interval == 0.25
    assert _data(cf)["devices"]["cnc01"]["poll_interval"] == 0.25
    assert entry["what"] == "devices.cnc01 changed" and entry["who"] == "tech"
    # the comments of the other sections survive, word for word
    head, rest = before.split("[devices.cnc01]", 1)
    others = head + rest[rest.index("[rules.cnc01_parts]"):]
    comments = [line for line in others.splitlines() if "#" in line]
    assert len(comments) > 15
    for line in comments:
        assert line in after, f"lost: {line}"
    assert after.index("[gateway]") < after.index("[devices.cnc01]") < after.index("[sinks.odoo]")


def test_putting_a_section_keeps_the_comment_above_the_next_section(cf: ConfigFile) -> None:
    device = cf.section("devices", "cnc01")
    cf.put("devices", "cnc01", dict(device, poll_interval=0.25), who="tech")
    assert "# Counter increments become production events.\n[rules.cnc01_parts]" in cf.text()


def test_adding_and_deleting_sections_keeps_the_rest(cf: ConfigFile) -> None:
    before = _data(cf)
    cfg, added = cf.put("machines", "CNC-02", {"work_center": "CNC-02"}, who="tech")
    assert added["what"] == "machines.CNC-02 added"
    assert "CNC-02" in cfg.machines
    cfg, deleted = cf.put("rules", "cnc01_scrap", None, who="tech")
    assert deleted["what"] == "rules.cnc01_scrap deleted"
    assert "cnc01_scrap" not in cfg.rules
    data = _data(cf)
    assert "cnc01_scrap" not in data["rules"] and set(data["rules"]) == set(before["rules"]) - {"cnc01_scrap"}
    assert data["devices"] == before["devices"] and data["sinks"] == before["sinks"]
    assert "# Counter increments become production events." in cf.text()
    with pytest.raises(ConfigRejected, match="does not exist"):
        cf.put("rules", "cnc01_scrap", None, who="tech")


def test_a_change_that_does_not_validate_names_the_key_and_leaves_the_file_alone(cf: ConfigFile) -> None:
    before = cf.path.read_bytes()
    device = cf.section("devices", "cnc01")
    with pytest.raises(ConfigRejected) as info:
        cf.put("devices", "cnc01", dict(device, port=70000, unit_id=999), who="tech")
    problems = info.value.problems
    assert any("devices.cnc01.port" in p and "70000" in p for p in problems), problems
    assert any("devices.cnc01.unit_id" in p for p in problems), "every problem is listed, not just the first"
    assert cf.path.read_bytes() == before
    assert cf.history() == [], "a refused change leaves no history"
    assert _temp_files(cf) == []


def test_a_rule_naming_a_missing_device_is_refused_with_its_key(cf: ConfigFile) -> None:
    before = cf.text()
    with pytest.raises(ConfigRejected) as info:
        cf.put("devices", "cnc01", None, who="tech")  # the rules still read cnc01
    assert any(p.startswith("rules.") or ".device" in p for p in info.value.problems), info.value.problems
    assert cf.text() == before


@pytest.mark.parametrize("kind, table, problem", [
    ("webui", {"port": 1}, "not a section the console edits"),
    ("gateway", {"id": "x"}, "not a section the console edits"),
    ("devices", ["not", "a", "table"], "must be a table"),
])
def test_only_the_console_sections_can_be_edited(cf: ConfigFile, kind: str, table: object, problem: str) -> None:
    before = cf.text()
    with pytest.raises(ConfigRejected, match=problem):
        cf.put(kind, "x", table, who="tech")  # type: ignore[arg-type]
    assert cf.text() == before


def test_replace_validates_the_whole_text(cf: ConfigFile) -> None:
    before = cf.text()
    with pytest.raises(ConfigRejected):
        cf.replace(before.replace("[gateway]", "[gateway\n"), who="admin")
    with pytest.raises(ConfigRejected) as info:
        cf.replace(before.replace("timeout = 10.0", "timeout = -1.0"), who="admin")
    assert any("sinks.odoo.timeout: " in p for p in info.value.problems), info.value.problems
    assert cf.text() == before
    _, entry = cf.replace(before.replace('site = "demo"', 'site = "hall-2"'), who="admin")
    assert entry["what"] == "whole file edited"
    assert 'site = "hall-2"' in cf.text()


# -- secrets ----------------------------------------------------------------------------------

def test_secrets_are_redacted_and_a_redacted_value_sent_back_keeps_the_secret(cf: ConfigFile) -> None:
    view = cf.view()
    assert view["config"]["sinks"]["odoo"]["api_key"] == REDACTED
    assert SECRET not in repr(view)
    sink = cf.section("sinks", "odoo")
    assert sink is not None and sink["api_key"] == REDACTED
    assert sink["login"] == "admin", "only secrets are masked"
    cfg, _ = cf.put("sinks", "odoo", dict(sink, timeout=20.0), who="tech")
    assert cfg.sinks["odoo"].api_key == SECRET
    assert _data(cf)["sinks"]["odoo"]["api_key"] == SECRET
    assert _data(cf)["sinks"]["odoo"]["timeout"] == 20.0
    # a new value is a new value
    cf.put("sinks", "odoo", dict(sink, api_key="rotated-key-1"), who="tech")
    assert _data(cf)["sinks"]["odoo"]["api_key"] == "rotated-key-1"


def test_history_diffs_mask_secrets(cf: ConfigFile) -> None:
    sink = cf.section("sinks", "odoo")
    _, entry = cf.put("sinks", "odoo", dict(sink, api_key="rotated-key-2"), who="tech")
    diff = cf.diff(entry["id"])
    assert "rotated-key-2" not in diff and SECRET not in diff
    assert all(SECRET not in cf.diff(h["id"]) for h in cf.history())


def test_history_diffs_mask_a_secret_written_with_a_quoted_key(cf: ConfigFile) -> None:
    _, entry = cf.replace(cf.text().replace(f'api_key = "{SECRET}"', '"api_key" = "quoted-secret-1"'), who="admin")
    assert cf.view()["config"]["sinks"]["odoo"]["api_key"] == REDACTED
    assert "quoted-secret-1" not in cf.diff(entry["id"])


def test_a_placeholder_secret_without_a_stored_one_is_a_validation_problem(cf: ConfigFile) -> None:
    before = cf.text()
    copy = cf.section("sinks", "odoo")  # the console's "duplicate" sends the masked section back
    with pytest.raises(ConfigRejected) as info:
        cf.put("sinks", "odoo2", copy, who="tech")
    assert any("sinks.odoo2.api_key" in p for p in info.value.problems), info.value.problems
    assert cf.text() == before


# -- versions ---------------------------------------------------------------------------------

def test_a_change_against_a_stale_version_is_a_conflict(cf: ConfigFile) -> None:
    v1 = cf.version()
    assert v1 == version_of(cf.text()) == cf.view()["version"]
    device = cf.section("devices", "cnc01")
    cf.put("devices", "cnc01", dict(device, poll_interval=0.3), who="alice", base_version=v1)
    v2 = cf.version()
    assert v2 != v1
    before = cf.text()
    with pytest.raises(ConfigConflict):
        cf.put("devices", "cnc01", dict(device, poll_interval=0.7), who="bob", base_version=v1)
    with pytest.raises(ConfigConflict):
        cf.replace(before.replace('site = "demo"', 'site = "x"'), who="bob", base_version=v1)
    assert cf.text() == before, "bob's stale edit does not silently revert alice's"
    cf.put("devices", "cnc01", dict(device, poll_interval=0.7), who="bob", base_version=v2)
    assert _data(cf)["devices"]["cnc01"]["poll_interval"] == 0.7


# -- history and rollback ---------------------------------------------------------------------

def test_history_records_who_what_and_rolls_back(cf: ConfigFile) -> None:
    original = cf.text()
    device = cf.section("devices", "cnc01")
    cf.put("devices", "cnc01", dict(device, poll_interval=0.25), who="alice")
    cf.put("machines", "CNC-02", {"work_center": "CNC-02"}, who="bob")
    history = cf.history()
    assert [(h["id"], h["who"], h["what"]) for h in history] == [
        (2, "bob", "machines.CNC-02 added"), (1, "alice", "devices.cnc01 changed"),
        (0, "as found", "the file before the first change from the console")]
    assert history[2]["version"] == version_of(original)
    assert history[0]["version"] == cf.version()
    diff = cf.diff(1)
    assert diff.startswith("--- #0\n+++ #1")
    assert any(line.startswith("-poll_interval = 0.5 ") for line in diff.splitlines()), diff
    assert "+poll_interval = 0.25" in diff
    assert "CNC-02" not in diff, "a diff shows its own entry only"
    assert "+[machines.CNC-02]" in cf.diff(2)
    with pytest.raises(ConfigRejected, match="does not exist"):
        cf.diff(99)
    # roll back to the file as found: itself a new, audited change
    cfg, entry = cf.rollback(0, who="carol")
    assert cf.text() == original
    assert "CNC-02" not in cfg.machines and cfg.devices["cnc01"].config.poll_interval == 0.5
    assert (entry["id"], entry["who"], entry["what"]) == (3, "carol", "rollback to #0")
    assert [h["id"] for h in cf.history()] == [3, 2, 1, 0]
    with pytest.raises(ConfigRejected, match="does not exist"):
        cf.rollback(42, who="carol")
    # history survives a restart of the console
    assert ConfigFile(cf.path, cf.history_dir.parent.parent).history() == cf.history()


def test_a_rollback_to_a_version_that_no_longer_validates_is_refused(cf: ConfigFile, tmp_path: Path) -> None:
    cf.put("machines", "CNC-02", {"work_center": "CNC-02"}, who="alice")
    # someone plants an invalid snapshot in the history (a hand edit, a downgrade)
    (cf.history_dir / "000001.toml").write_text("[gateway]\nid = 'bad id with spaces'\n", encoding="utf-8")
    before = cf.text()
    with pytest.raises(ConfigRejected):
        cf.rollback(1, who="carol")
    assert cf.text() == before


# -- atomic writes ----------------------------------------------------------------------------

def test_saving_leaves_no_temporary_files_and_keeps_a_symlinked_file_a_link(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    real = data / "linebridge.toml"
    real.write_text(_demo_text(), encoding="utf-8")
    link = tmp_path / "linebridge.toml"
    link.symlink_to(real)
    cf = ConfigFile(link, tmp_path / "state")
    device = cf.section("devices", "cnc01")
    cf.put("devices", "cnc01", dict(device, poll_interval=0.4), who="tech")
    with pytest.raises(ConfigRejected):
        cf.put("devices", "cnc01", dict(device, port=0), who="tech")
    assert link.is_symlink(), "the link to the data partition stays a link"
    assert "poll_interval = 0.4" in real.read_text()
    leftovers = [p.name for d in (tmp_path, data, cf.history_dir) for p in d.iterdir() if ".tmp" in p.name]
    assert leftovers == []
    assert sorted(p.name for p in cf.history_dir.iterdir()) == ["000000.json", "000000.toml",
                                                                  "000001.json", "000001.toml"]


def test_a_crash_before_the_rename_leaves_the_old_file_whole(cf: ConfigFile, monkeypatch: pytest.MonkeyPatch) -> None:
    before = cf.text()
    device = cf.section("devices", "cnc01")
    real_replace = os.replace

    def crash(src: str, dst: str) -> None:
        if Path(dst) == Path(os.path.realpath(cf.path)):
            raise OSError("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        cf.put("devices", "cnc01", dict(device, poll_interval=0.9), who="tech")
    assert cf.text() == before, "the old file is whole: the new text only ever went to the temporary file"
