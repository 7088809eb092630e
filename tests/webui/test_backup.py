"""Backup, restore, export and import (webui.backup): the archive shows no secret, a passphrase seals the
secrets and the device key, a restore is checked whole before it writes, and only admins make or apply one.

The archive tests run on the format itself; the rest on real gateways: one whose configuration, users and
history change after its backup and are restored, and a fresh one that takes a sealed backup's device key.
"""
from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import wait_for
from tests.webui.conftest import Console, Gateway, admin_console, demo_config, start_gateway
from webui import backup

SECRET = "odoo-key-7f3a9c1e55"


def _config(plant_port: int, odoo_url: str, ui_port: int) -> str:
    return demo_config(plant_port, odoo_url, ui_port).replace('api_key = "admin"', f'api_key = "{SECRET}"')


def _gateway(tmp: Path) -> Iterator[Gateway]:
    yield from start_gateway(tmp, _config, odoo_api_key=SECRET)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from _gateway(tmp_path_factory.mktemp("backup"))


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from _gateway(tmp_path_factory.mktemp("fresh"))


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}


def _archive(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _backup(c: Console, passphrase: str | None = None) -> bytes:
    resp = c.api("POST", "/backup", {"passphrase": passphrase} if passphrase else {})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/gzip"
    assert resp.headers["content-disposition"].startswith('attachment; filename="linebridge-backup-')
    return resp.content


def _restore(c: Console, data: bytes, passphrase: str | None = None, key: bool = False):
    headers = {"X-CSRF-Token": c.csrf, "Content-Type": "application/gzip"}
    if passphrase:
        headers["X-Backup-Passphrase"] = passphrase
    return c.http.post("/api/v1/restore" + ("?device_key=1" if key else ""), content=data, headers=headers)


def test_a_backup_without_passphrase_shows_no_secret_and_one_with_seals_it(gw: Gateway) -> None:
    c = admin_console(gw)
    plain, sealed = _backup(c), _backup(c, "a long passphrase")
    for data in (plain, sealed):
        members = _members(data)
        assert SECRET.encode() not in gzip.decompress(data)
        assert b"PRIVATE KEY" not in gzip.decompress(data)
        manifest = json.loads(members["manifest.json"])
        assert manifest["format"] == "linebridge-backup" and manifest["by"] == "admin"
        assert {"config.toml", "users.json"} <= set(manifest["files"])
        assert 'api_key = "********"' in members["config.toml"].decode()
    assert "sealed.bin" not in _members(plain) and "sealed.bin" in _members(sealed)
    opened = backup.read(sealed, "a long passphrase")
    assert f'api_key = "{SECRET}"' in opened.config_text
    assert opened.device_key == (gw.state_dir / "keys" / "device.key").read_bytes()
    with pytest.raises(backup.BackupRejected, match="passphrase: it does not open"):
        backup.read(sealed, "the wrong passphrase")
    short = c.api("POST", "/backup", {"passphrase": "short"})
    assert short.status_code == 422 and "12 characters" in short.json()["problems"][0]
    c.close()


def test_a_tampered_or_hostile_archive_is_refused_naming_why(gw: Gateway) -> None:
    c = admin_console(gw)
    members = _members(_backup(c))
    changed = dict(members, **{"config.toml": members["config.toml"] + b"\n# edited\n"})
    resp = _restore(c, _archive(changed))
    assert resp.status_code == 422 and resp.json()["problems"] == ["config.toml: its SHA-256 does not match the manifest"]
    resp = _restore(c, _archive(dict(members, **{"../etc/passwd": b"x"})))
    assert resp.status_code == 422 and "not a plain file of a backup" in resp.json()["problems"][0]
    resp = _restore(c, b"not an archive at all")
    assert resp.status_code == 422 and resp.json()["problems"] == ["archive: not a gzip'd tar (ReadError)"]
    bad_users = dict(members, **{"users.json": b'{"users": [{"name": "x", "role": "root", "password": "p", '
                                               b'"created": 0, "created_by": "x"}]}'})
    manifest = json.loads(members["manifest.json"])
    import hashlib
    manifest["files"]["users.json"] = hashlib.sha256(bad_users["users.json"]).hexdigest()
    bad_users["manifest.json"] = json.dumps(manifest).encode()
    resp = _restore(c, _archive(bad_users))
    assert resp.status_code == 422
    assert "users[0].role: one of admin, technician, viewer" in resp.json()["problems"][0]
    c.close()


def test_only_an_admin_makes_or_restores_a_backup(gw: Gateway) -> None:
    admin = admin_console(gw)
    admin.api("POST", "/users", {"name": "tech2", "role": "technician", "password": "technician pw 2"})
    tech = Console(gw)
    assert tech.login("tech2", "technician pw 2").status_code == 302
    assert tech.api("POST", "/backup", {}).status_code == 403
    assert _restore(tech, _backup(admin)).status_code == 403
    export = tech.http.get("/api/v1/config/export")            # a technician may export (secrets masked)
    assert export.status_code == 200 and SECRET not in export.text and 'api_key = "********"' in export.text
    tech.close()
    admin.close()


def test_a_restore_brings_back_config_and_users_and_keeps_the_restorer(gw: Gateway) -> None:
    c = admin_console(gw)
    data = _backup(c, "a long passphrase")
    users_before = {u["name"] for u in c.api("GET", "/users").json()["users"]}
    # after the backup: a device's machine changes, a user is added
    dev = c.api("GET", "/devices/cnc01").json()
    section = dict(dev["section"], poll_interval=0.7)
    assert c.api("PUT", "/devices/cnc01", {"section": section, "version": c.api("GET", "/config").json()["version"]}
                 ).status_code == 200
    c.api("POST", "/users", {"name": "late", "role": "viewer", "password": "late viewer pw"})
    resp = _restore(c, data, "a long passphrase")
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["restored"]["from"]["sealed"] is True and out["restored"]["config"]["who"] == "admin"
    assert set(out["restored"]["users"]) == users_before
    assert c.api("GET", "/devices/cnc01").json()["section"]["poll_interval"] == dev["section"]["poll_interval"] != 0.7
    assert f'api_key = "{SECRET}"' in gw.config_path.read_text()          # the secret itself, not a mask
    assert c.api("GET", "/me").status_code == 200                          # the restorer's session goes on
    assert Console(gw).login("late", "late viewer pw").status_code != 302  # not in the backup: gone
    history = c.api("GET", "/config/history").json()["history"]
    assert history[0]["who"] == "admin"
    c.close()


def test_an_import_of_an_exported_file_keeps_the_stored_secret(gw: Gateway) -> None:
    c = admin_console(gw)
    text = c.http.get("/api/v1/config/export").text
    assert SECRET not in text
    resp = c.api("PUT", "/config", {"text": text.replace("CNC-01", "CNC-01b", 1)})
    assert resp.status_code == 200, resp.text
    saved = gw.config_path.read_text()
    assert f'api_key = "{SECRET}"' in saved and "CNC-01b" in saved
    c.close()


def test_a_fresh_gateway_takes_the_sealed_device_key_and_a_used_one_refuses_it(gw: Gateway, fresh: Gateway) -> None:
    src = admin_console(gw)
    data = _backup(src, "a long passphrase")
    key = backup.read(data, "a long passphrase").device_key
    assert key
    # the source has delivered: its journal holds entries sealed with its key
    wait_for(lambda: src.api("GET", "/journal").json().get("entries"), 60, "a delivery on the source")
    other = admin_console(fresh)
    other_key = backup.read(_backup(other, "another passphrase"), "another passphrase").device_key
    refused = _restore(src, _backup(other, "another passphrase"), "another passphrase", key=True)
    assert refused.status_code == 422 and "device key: this gateway has delivered" in refused.json()["problems"][0]
    assert backup.read(_backup(src, "a long passphrase"), "a long passphrase").device_key == key   # unchanged
    assert other_key != key
    src.close()
    other.close()


def test_restore_key_refuses_a_used_journal_and_writes_a_fresh_one(tmp_path: Path) -> None:
    contents = backup.Contents({}, "", {}, {"users": []}, device_key=b"-----BEGIN PRIVATE KEY-----\nx\n")
    with pytest.raises(backup.BackupRejected, match="has delivered"):
        backup.restore_key(contents, tmp_path, journal_entries=3)
    (tmp_path / "keys").mkdir()
    assert backup.restore_key(contents, tmp_path, journal_entries=0) is True
    path = next((tmp_path / "keys").iterdir())
    assert path.read_bytes() == contents.device_key and (path.stat().st_mode & 0o777) == 0o600
