"""The System page's API: NTP servers and SSH keys written for root to apply (webui.system).

A gateway whose `[webui]` names a timesyncd drop-in and an authorized_keys file (as the
image's configuration does) is changed through the console's API and, last, through its
System page in Chromium; the files are checked as systemd-timesyncd and sshd would read
them, fingerprints against `ssh-keygen -l`. (That root applies them on the image is
checked by image/test-boot.sh.)
"""
from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from playwright.sync_api import Browser, expect

from gateway.config import load
from gateway.errors import ConfigError
from tests.webui.conftest import Console, Gateway, admin_console, admin_page, demo_config, start_gateway
from tests.webui.test_browser import LAPTOP, SLOW, go, shot
from webui import system

FALLBACK = "FallbackNTP=0.debian.pool.ntp.org 1.debian.pool.ntp.org\n"


@pytest.fixture(scope="module")
def appliance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("appliance")
    (tmp / "timesyncd.conf").write_text("# first boot\n[Time]\nNTP=\n" + FALLBACK, encoding="utf-8")

    def config(plant_port: int, odoo_url: str, ui_port: int) -> str:
        return demo_config(plant_port, odoo_url, ui_port) + (
            f'timesyncd_conf = "{tmp / "timesyncd.conf"}"\nssh_authorized_keys = "{tmp / "ssh_authorized_keys"}"\n'
            f'\n[files]\nsystem = ["{tmp}"]\n')
    yield from start_gateway(tmp, config)


def _openssh(comment: str, kind: str = "ed25519") -> str:
    key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else rsa.generate_private_key(65537, 2048)
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{line.decode()} {comment}"


def test_ntp_servers_are_written_as_a_timesyncd_drop_in_that_keeps_its_fallback(appliance: Gateway) -> None:
    c = admin_console(appliance)
    path = appliance.state_dir.parent / "timesyncd.conf"
    before = c.api("GET", "/system").json()["time"]
    assert before["managed"] and before["ntp"] == [] and before["fallback"][0] == "0.debian.pool.ntp.org"
    resp = c.api("PUT", "/system/time", {"ntp": ["ntp.plant.example", "10.0.0.1", "fd00::123"]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["ntp"] == ["ntp.plant.example", "10.0.0.1", "fd00::123"]
    text = path.read_text(encoding="utf-8")
    assert "[Time]\nNTP=ntp.plant.example 10.0.0.1 fd00::123\n" + FALLBACK in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o640      # systemd-timesync reads it through the group
    assert "event=system_change setting=ntp" in appliance.log() and "by=admin" in appliance.log()
    assert c.api("GET", "/system").json()["time"]["ntp"] == ["ntp.plant.example", "10.0.0.1", "fd00::123"]


def test_a_bad_ntp_server_is_refused_by_name_and_nothing_is_written(appliance: Gateway) -> None:
    c = admin_console(appliance)
    path = appliance.state_dir.parent / "timesyncd.conf"
    before = path.read_text(encoding="utf-8")
    resp = c.api("PUT", "/system/time", {"ntp": ["good.example", "bad host", "-x.example", "300"]})
    assert resp.status_code == 422
    problems = resp.json()["problems"]
    assert len(problems) == 3 and all(p.startswith("ntp server ") for p in problems), problems
    assert any("'bad host'" in p for p in problems) and any("'300'" in p for p in problems)
    assert c.api("PUT", "/system/time", {"ntp": "pool.example"}).status_code == 422
    assert path.read_text(encoding="utf-8") == before


def test_ssh_is_on_while_a_key_is_set_and_its_fingerprint_is_the_one_ssh_keygen_prints(
        appliance: Gateway, tmp_path: Path) -> None:
    c = admin_console(appliance)
    path = appliance.state_dir.parent / "ssh_authorized_keys"
    ssh = c.api("GET", "/system").json()["ssh"]
    assert {k: ssh[k] for k in ("managed", "enabled", "keys")} == {"managed": True, "enabled": False, "keys": []}
    keys = [_openssh("tech@laptop"), _openssh("vendor", "rsa")]
    resp = c.api("PUT", "/system/ssh", {"authorized_keys": "# ours\n" + "\n".join(keys) + "\n\n"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["enabled"] and [k["comment"] for k in body["keys"]] == ["tech@laptop", "vendor"]
    assert [k["type"] for k in body["keys"]] == ["ssh-ed25519", "ssh-rsa"]
    assert [line for line in path.read_text().splitlines() if not line.startswith("#")] == keys
    if shutil.which("ssh-keygen"):
        listed = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], capture_output=True, text=True, check=True)
        assert [line.split()[1] for line in listed.stdout.splitlines()] == [k["fingerprint"] for k in body["keys"]]
    assert "event=system_change setting=ssh enabled=True" in appliance.log()
    off = c.api("PUT", "/system/ssh", {"authorized_keys": ""})
    assert off.json() == {"managed": True, "enabled": False, "keys": []}
    assert all(line.startswith("#") for line in path.read_text().splitlines())


def test_a_bad_key_line_is_refused_by_its_line_number(appliance: Gateway) -> None:
    c = admin_console(appliance)
    good = _openssh("ok")
    resp = c.api("PUT", "/system/ssh", {"authorized_keys": "\n".join([
        good, "ssh-ed25519 not-base64!", 'from="10.0.0.0/8" ' + good, "ssh-ed25519", good])})
    assert resp.status_code == 422
    problems = resp.json()["problems"]
    assert [p.split(":")[0] for p in problems[:3]] == ["line 2", "line 3", "line 4"], problems
    assert "options before the key are not supported" in problems[1]
    assert problems[3] == "authorized_keys: a key is listed twice"
    assert c.api("GET", "/system").json()["ssh"]["enabled"] is False


def test_only_an_admin_changes_the_system(appliance: Gateway) -> None:
    admin = admin_console(appliance)
    for name, role in (("tech1", "technician"), ("view1", "viewer")):
        assert admin.api("POST", "/users", {"name": name, "role": role, "password": "long enough pw"}).status_code == 200
        c = Console(appliance)
        assert c.login(name, "long enough pw").status_code == 302
        assert c.api("GET", "/system").status_code == 200
        for path, body in (("/system/time", {"ntp": []}), ("/system/ssh", {"authorized_keys": _openssh("x")})):
            resp = c.api("PUT", path, body)
            assert resp.status_code == 403 and resp.json()["error"] == f"a {role} may not change system", resp.text


def test_where_the_files_are_not_configured_the_host_manages_them(tmp_path: Path) -> None:
    assert system.read_time(None)["managed"] is False and system.read_ssh(None)["managed"] is False
    with pytest.raises(system.NotManaged, match=r"\[webui\] timesyncd_conf is not set"):
        system.write_time(None, ["pool.example"])
    with pytest.raises(system.NotManaged, match=r"\[webui\] ssh_authorized_keys is not set"):
        system.write_ssh(None, _openssh("x"))
    cfg = tmp_path / "c.toml"
    cfg.write_text('[gateway]\nid = "gw"\n[webui]\ntimesyncd_conf = "timesyncd.conf"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"webui\.timesyncd_conf.*absolute path"):
        load(cfg)


def test_the_system_files_must_be_in_the_declared_directory(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    state = tmp_path / "state"
    for path in ("/etc/shadow", f"{tmp_path}/../../etc/passwd", f"{state}/webui/users.json"):
        cfg.write_text(f'[gateway]\nid = "gw"\n[webui]\nssh_authorized_keys = "{path}"\n'
                       f'[files]\nsystem = ["{tmp_path}"]\n', encoding="utf-8")
        with pytest.raises(ConfigError, match=r"webui\.ssh_authorized_keys: .*(outside the directories|own files)"):
            load(cfg, state_dir=state)
    cfg.write_text(f'[gateway]\nid = "gw"\n[webui]\nssh_authorized_keys = "{tmp_path}/keys"\n'
                   f'[files]\nsystem = ["{tmp_path}"]\n', encoding="utf-8")
    assert load(cfg, state_dir=state).webui.ssh_authorized_keys == f"{tmp_path}/keys"


def test_an_admin_sets_ntp_and_ssh_on_the_system_page_in_a_browser(appliance: Gateway, browser: Browser) -> None:
    with admin_page(browser, appliance, LAPTOP, SLOW) as page:
        go(page, "System")
        expect(page.locator("#clock-state")).to_contain_text("synchronized")
        page.get_by_label("NTP servers").fill("ntp1.plant.example  10.1.2.3")
        page.get_by_role("button", name="Save NTP servers").click()
        expect(page.locator("#flash .ok")).to_have_text("NTP servers saved")
        assert "NTP=ntp1.plant.example 10.1.2.3\n" in (appliance.state_dir.parent / "timesyncd.conf").read_text()

        keys = page.get_by_label("Public keys (authorized_keys, one per line)")
        keys.fill("ssh-ed25519 AAAA-broken laptop")
        page.get_by_role("button", name="Save keys").click()
        expect(page.locator("#flash .error")).to_contain_text("line 1: not a valid ssh-ed25519 public key")
        key = _openssh("tech@laptop")
        keys.fill(key)
        page.get_by_role("button", name="Save keys").click()
        expect(page.locator("#flash .ok")).to_have_text("SSH is on for 1 key(s)")
        expect(page.locator("#ssh-state")).to_have_text("on (1 key)")
        fingerprint = system.parse_keys(key)[0][0]["fingerprint"]
        expect(page.locator("#ssh-table tbody")).to_contain_text(fingerprint)
        expect(keys).to_have_value(key)               # the saved keys, ready to edit
        page.evaluate("window.scrollTo(0, 0)")
        shot(page, "system")

        keys.fill("")
        page.once("dialog", lambda dialog: dialog.accept())   # "Remove every key and turn SSH off?"
        page.get_by_role("button", name="Save keys").click()
        expect(page.locator("#ssh-state")).to_have_text("off (no key set)")
        expect(page.locator("#ssh-table tbody")).to_contain_text("No keys: SSH is off.")
