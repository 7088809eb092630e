"""The `linebridge` command as a user meets it: version, check-config, demo."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

from gateway.demo import WEBUI_PORT, demo_config_text

CLI = [sys.executable, "-m", "gateway.cli"]


def _run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_version_is_printed():
    out = _run("--version")
    assert out.returncode == 0 and out.stdout.startswith("linebridge 0.")


def test_check_config_accepts_the_demo_config_with_a_one_line_summary(tmp_path):
    path = tmp_path / "demo.toml"
    path.write_text(demo_config_text())
    out = _run("check-config", str(path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n") == 1 and out.stdout.startswith("demo.toml: ok: gateway demo-gw, 1 device(s)")


def test_check_config_names_file_key_and_reason_for_every_error(tmp_path):
    text = (demo_config_text().replace("address = 0", "address = 70000")
            .replace('tag = "parts"', 'tag = "partz"').replace('url = "http://127.0.0.1:8069"', 'url = "ftp://x"'))
    path = tmp_path / "plant.toml"
    path.write_text(text)
    out = _run("check-config", str(path))
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert "plant.toml: devices.cnc01.tags.parts.address: must be 0..65535, got 70000" in lines
    assert "plant.toml: rules.cnc01_parts.tag: device 'cnc01' has no tag 'partz'" in lines
    assert "plant.toml: sinks.odoo.url: must be an http:// or https:// URL, got 'ftp://x'" in lines
    assert lines[-1] == "plant.toml: 3 error(s)"


def test_check_config_reports_unknown_keys_missing_sections_and_broken_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[gateway]\nid = "gw"\ncolour = "blue"\n')
    out = _run("check-config", str(path))
    assert out.returncode == 1
    assert "bad.toml: gateway.colour: unknown key (allowed: environment, id, restart_window_s, site)" in out.stderr
    assert "bad.toml: sinks: at least one sink is required" in out.stderr
    path.write_text("[gateway\n")
    out = _run("check-config", str(path))
    assert out.returncode == 1 and "bad.toml: not valid TOML" in out.stderr


def test_run_refuses_to_start_on_an_invalid_config(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(demo_config_text().replace("unit_id = 1", "unit_id = 300"))
    out = _run("run", "--config", str(path), "--state-dir", str(tmp_path / "state"))
    assert out.returncode == 1 and "devices.cnc01.unit_id" in out.stderr
    assert not (tmp_path / "state").exists()


def test_print_config_prints_the_demo_configuration():
    out = _run("demo", "--print-config")
    # the console too: a copied demo configuration runs with its [webui]
    assert out.returncode == 0 and out.stdout == demo_config_text(webui_port=WEBUI_PORT)
    assert "\n[webui]\n" in out.stdout


def test_demo_carries_every_part_into_odoo_and_ends_with_a_json_summary():
    out = _run("demo", "--duration", "12", "--json", timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SANDBOX" not in out.stdout.splitlines()[-1]
    summary = json.loads(out.stdout.splitlines()[-1])
    parts = summary["ground_truth"]["machines"]["CNC-01"]["parts"]
    assert summary["ground_truth"]["final"] is True and parts > 0
    assert summary["delivered"]["odoo"] > 0 and summary["failed"] == 0 and summary["dead_letters"] == 0
    odoo = summary["odoo"]["CNC-01"]
    assert odoo["qty_producing"] == parts
    assert odoo["scrap"] == summary["ground_truth"]["machines"]["CNC-01"]["scrap"]
    assert odoo["downtimes"] == summary["ground_truth"]["machines"]["CNC-01"]["alarms"]
    assert "MATCH: Odoo agrees with the plant" in out.stdout
    assert summary["stored"] == summary["delivered"]["odoo"]


def test_ctrl_c_stops_the_demo_and_it_still_prints_its_summary(tmp_path):
    """Ctrl-C in a terminal sends SIGINT to the whole foreground process group, the demo's sandboxes too:
    they must outlive the demo's own stop long enough for its summary."""
    proc = subprocess.Popen([*CLI, "demo"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)    # its own group, as a shell's foreground job
    lines: list[str] = []
    delivered = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "odoo: delivered=" in line and "odoo: delivered=0 " not in line:
                delivered.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert delivered.wait(60), "".join(lines[-20:])
        os.killpg(proc.pid, signal.SIGINT)               # what the terminal does on Ctrl-C
        assert proc.wait(60) == 0, "".join(lines[-40:])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(10)
    out = "".join(lines)
    assert "Traceback" not in out, out[-3000:]
    done = [line for line in lines if line.startswith("demo: plant:")]
    assert done and "Odoo: qty_producing" in done[0] and "qty_producing None" not in done[0], out[-2000:]
    assert "`linebridge demo --duration 30` stops the plant, drains the backlog and compares exactly" in out
