"""The relay's systemd unit as systemd reads it: `systemd-analyze verify` without a warning."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "linebridge-relay.service"
ANALYZE = shutil.which("systemd-analyze")

pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (tests/setup.sh)")


def _verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    host = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()), None)
    if host is None:
        pytest.skip("the host has no systemd unit directory to verify against")
    root = tmp_path / "root"
    shutil.copytree(host, root / "usr/lib/systemd/system", symlinks=True)
    line = next(li for li in text.splitlines() if li.startswith("ExecStart="))
    binary = root / line.split("=", 1)[1].split()[0].lstrip("/")
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system" / UNIT.name).write_text(text)
    return subprocess.run([ANALYZE, "verify", "--man=no", f"--root={root}", UNIT.name],
                          capture_output=True, text=True, timeout=60)


def test_systemd_analyze_verify_accepts_the_relay_unit(tmp_path):
    out = _verify(tmp_path, UNIT.read_text())
    assert out.returncode == 0 and out.stdout + out.stderr == "", out.stdout + out.stderr


def test_verify_would_catch_a_typo_in_it(tmp_path):
    out = _verify(tmp_path, UNIT.read_text().replace("RestartSec=5", "RestartSec=5\nRestartSecs=5"))
    assert "Unknown key 'RestartSecs'" in out.stderr
