"""Load only what is configured: a gateway imports the libraries of its configured parts, and a
configured part whose extra is not installed fails `check-config` and `run` with the pip command.

Each case runs in its own interpreter (sys.modules is per process). A missing library is
simulated by a meta path finder, first on sys.meta_path, that refuses the import as an
uninstalled package would.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import free_port

# importlib.metadata (with zipfile, csv ...): ~4 MiB and ~50 ms of every start, for reading entry points
HEAVY = ("flask", "werkzeug", "jinja2", "cheroot", "httpx", "asyncua", "importlib.metadata",
         # cryptography's key serialization (with its SSH, RSA and EC code): the device key is read without it
         "cryptography.hazmat.primitives.serialization")

MODBUS_MQTT = """
[gateway]
id = "gw-lean"
site = "test"

[devices.press]
type = "modbus_tcp"
host = "127.0.0.1"
port = {modbus_port}
poll_interval = 0.2
timeout = 0.5

[devices.press.tags.parts]
function = "holding"
address = 0
type = "uint16"

[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1:{mqtt_port}"
telemetry = true

[heartbeat]
sink = "up"
"""

ODOO_SINK = """
[sinks.odoo]
type = "odoo"
url = "http://127.0.0.1:9"
database = "plant"
login = "admin"
api_key = "k"
"""

OPCUA_DEVICE = """
[devices.oven]
type = "opcua"
endpoint = "opc.tcp://127.0.0.1:4840"

[devices.oven.tags.temp]
node = "ns=2;s=Oven.Temp"
"""

REFUSE = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {refused!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Refuse())
"""


def _python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=Path(__file__).resolve().parents[2])


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(MODBUS_MQTT.format(modbus_port=free_port(), mqtt_port=free_port()) + extra)
    return path


def test_a_modbus_and_mqtt_gateway_imports_neither_the_web_ui_nor_httpx_nor_asyncua(tmp_path):
    """The supervisor, the services and the tasks of a Modbus + MQTT gateway, running for a moment."""
    config = _config(tmp_path)
    out = _python(f"""
        import asyncio, sys
        from pathlib import Path
        from gateway import config as config_mod, services
        from gateway.supervisor import Supervisor

        async def main():
            cfg = config_mod.load({str(config)!r})
            sup = Supervisor(cfg, Path({str(tmp_path / 'state')!r}))
            loaded = services.load(sup, Path({str(config)!r}))
            runner = asyncio.create_task(sup.run())
            await asyncio.sleep(1.0)
            sup.stop()
            await runner
            return loaded

        loaded = asyncio.run(main())
        assert loaded == [], loaded
        assert "pymodbus" in sys.modules and "paho.mqtt.client" in sys.modules
        print(" ".join(m for m in {HEAVY!r} if m in sys.modules) or "none")
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "none"


def test_the_web_ui_is_loaded_when_it_is_configured(tmp_path):
    config = _config(tmp_path, f'\n[webui]\nlisten = "127.0.0.1"\nport = {free_port()}\n')
    out = _python(f"""
        import sys
        from pathlib import Path
        from gateway import config as config_mod, services
        from gateway.supervisor import Supervisor
        sup = Supervisor(config_mod.load({str(config)!r}), Path({str(tmp_path / 'state')!r}))
        print([type(s).__name__ for s in services.load(sup, Path({str(config)!r}))], "flask" in sys.modules)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "['WebService'] True"


@pytest.mark.parametrize("extra_config, refused, key, extra", [
    (OPCUA_DEVICE, {"asyncua"}, "devices.oven.type", "opcua"),
    ("", {"pymodbus"}, "devices.press.type", "modbus"),
    ("", {"paho"}, "sinks.up", "mqtt"),
    (ODOO_SINK, {"httpx"}, "sinks.odoo", "odoo"),
    ('\n[webui]\nlisten = "127.0.0.1"\n', {"flask"}, "webui", "webui"),
])
def test_a_configured_part_whose_extra_is_missing_fails_with_the_pip_command(tmp_path, extra_config, refused,
                                                                                key, extra):
    config = _config(tmp_path, extra_config)
    for command in (["check-config", str(config)], ["run", "--config", str(config),
                                                    "--state-dir", str(tmp_path / "state")]):
        out = _python(REFUSE.format(refused=refused) + f"""
import sys
from gateway.cli import main
sys.exit(main({command!r}))
""")
        assert out.returncode == 1, (command, out.stdout, out.stderr)
        line = next(line for line in out.stderr.splitlines() if f": {key}:" in line)
        assert line.endswith(f"pip install 'linebridge[{extra}]'"), line
        assert "Traceback" not in out.stderr


def test_the_same_configuration_passes_when_the_libraries_are_there(tmp_path):
    config = _config(tmp_path, OPCUA_DEVICE + ODOO_SINK)
    out = _python(f"""
import sys
from gateway.cli import main
sys.exit(main(["check-config", {str(config)!r}]))
""")
    assert out.returncode == 0, out.stderr
