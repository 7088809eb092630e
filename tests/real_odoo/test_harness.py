"""The harness itself: a missing or unbuilt real Odoo is a failure that names what to set, never a skip."""
from __future__ import annotations

import pytest

from tests.real_odoo.harness import PEERS_ENV, PeerMissing, find_peer


def test_an_unset_peers_variable_names_itself(monkeypatch) -> None:
    monkeypatch.delenv(PEERS_ENV, raising=False)
    with pytest.raises(PeerMissing, match=PEERS_ENV):
        find_peer("17.0")


def test_a_folder_without_that_version_says_so(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(PEERS_ENV, str(tmp_path))
    with pytest.raises(PeerMissing, match=r"no odoo-17\.0\*\.tar\.xz"):
        find_peer("17.0")


def test_a_tarball_not_built_yet_asks_for_tests_setup(monkeypatch, tmp_path) -> None:
    (tmp_path / "odoo-17.0-trimmed.tar.xz").write_bytes(b"not really")
    monkeypatch.setenv(PEERS_ENV, str(tmp_path))
    monkeypatch.setenv("LINEBRIDGE_ODOO_CACHE", str(tmp_path / "cache"))
    with pytest.raises(PeerMissing, match="run tests/setup.sh"):
        find_peer("17.0")
