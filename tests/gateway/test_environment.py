"""Environments (dev, test, prod) and configuration layers: a prod gateway refuses the sandbox
Odoo and non-TLS destinations unless a sink allows it; layered files merge, and each error names
the file that set the value."""
from __future__ import annotations

import subprocess
import sys

import pytest

from gateway import config as config_mod
from gateway.enrich import enrich
from gateway.errors import ConfigError
from gateway.events import Event, event_id
from gateway.signing import DeviceKey, verify

CLI = [sys.executable, "-m", "gateway.cli"]

ODOO = """
[sinks.odoo]
type = "odoo"
url = "{url}"
database = "{database}"
login = "gateway"
api_key = "k"
{extra}
"""


def _cfg(env: str, url: str = "https://erp.example.com", database: str = "plant", extra: str = "",
         mqtt: str = "") -> str:
    return (f'[gateway]\nid = "gw1"\nenvironment = "{env}"\n' + ODOO.format(url=url, database=database, extra=extra)
            + mqtt)


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        config_mod.parse(text, source="gw.toml")
    return err.value.problems


def test_the_default_is_dev_and_an_unknown_environment_is_refused_by_key():
    assert config_mod.parse(_cfg("dev").replace('environment = "dev"\n', "")).gateway.environment == "dev"
    assert any(p.startswith("gw.toml: gateway.environment: ") for p in _problems(_cfg("production")))


def test_prod_refuses_plain_http_mqtt_and_the_sandbox_database_naming_each_key():
    mqtt = '[sinks.up]\ntype = "mqtt"\nurl = "mqtt://broker.example.com"\n'
    problems = _problems(_cfg("prod", url="http://erp.example.com", database="sandbox", mqtt=mqtt))
    assert any(p.startswith("gw.toml: sinks.odoo.url: a prod gateway") and "https://" in p for p in problems)
    assert any(p.startswith("gw.toml: sinks.odoo.database: a prod gateway") for p in problems)
    assert any(p.startswith("gw.toml: sinks.up.url: a prod gateway") and "mqtts://" in p for p in problems)
    # the same destinations are fine for dev and test gateways
    for env in ("dev", "test"):
        config_mod.parse(_cfg(env, url="http://erp.example.com", database="sandbox", mqtt=mqtt))


def test_prod_accepts_tls_and_an_explicitly_allowed_insecure_sink_but_never_the_sandbox():
    mqtt = '[sinks.up]\ntype = "mqtt"\nurl = "mqtt://broker.local"\nallow_insecure = true\n'
    cfg = config_mod.parse(_cfg("prod", url="http://erp.local", extra="allow_insecure = true", mqtt=mqtt))
    assert cfg.gateway.environment == "prod" and cfg.sinks["odoo"].allow_insecure
    config_mod.parse(_cfg("prod"))
    problems = _problems(_cfg("prod", url="http://127.0.0.1:8069", database="sandbox",
                              extra="allow_insecure = true"))
    assert [p.split(": ")[1] for p in problems] == ["sinks.odoo.database"]


def test_every_event_carries_the_environment_in_its_signed_context(tmp_path):
    key = DeviceKey.load_or_create(tmp_path)
    ev = Event(id=event_id("gw1", "cnc01/parts", "1"), kind="production", ts="2026-12-07T10:00:00.000Z",
               gateway="gw1", source={"device": "cnc01"}, data={"quantity": 1}, context={"machine": "CNC-01"})
    signed = key.sign(enrich(ev, {}, environment="prod").to_dict())
    assert signed["context"]["environment"] == "prod" and verify(signed, key.public) is None
    signed["context"]["environment"] = "dev"             # relabelling test data breaks the signature
    assert verify(signed, key.public) is not None


SITE = """
[gateway]
site = "plant-a"
environment = "prod"

[service_levels]
alarm = 60

[sinks.odoo]
type = "odoo"
url = "https://erp.example.com"
database = "plant"
login = "gateway"
api_key = "k"
"""


def test_layers_merge_later_files_win_per_key_and_tables_merge(tmp_path):
    (tmp_path / "site.toml").write_text(SITE)
    (tmp_path / "line3.toml").write_text('[gateway]\nid = "line3"\n\n[service_levels]\nproduction = 600\n'
                                         '[sinks.odoo]\nbatch_size = 50\n')
    cfg = config_mod.load([tmp_path / "site.toml", tmp_path / "line3.toml"])
    assert (cfg.gateway.id, cfg.gateway.site, cfg.gateway.environment) == ("line3", "plant-a", "prod")
    assert cfg.service_levels["alarm"] == 60.0 and cfg.service_levels["production"] == 600.0
    assert cfg.sinks["odoo"].batch_size == 50 and cfg.sinks["odoo"].url == "https://erp.example.com"
    assert cfg.source == "site.toml+line3.toml"


def test_a_layered_error_names_the_file_that_set_the_value(tmp_path):
    (tmp_path / "site.toml").write_text(SITE)
    (tmp_path / "line3.toml").write_text('[gateway]\nid = "line3"\n[sinks.odoo]\nurl = "http://erp.example.com"\n'
                                         'timeout = -1\n[service_levels]\nalarm = 0\n')
    with pytest.raises(ConfigError) as err:
        config_mod.load([tmp_path / "site.toml", tmp_path / "line3.toml"])
    problems = err.value.problems
    assert any(p.startswith("line3.toml: sinks.odoo.url: a prod gateway") for p in problems), problems
    assert any(p.startswith("line3.toml: sinks.odoo.timeout: ") for p in problems), problems
    assert any(p.startswith("line3.toml: service_levels.alarm: ") for p in problems), problems
    # the same url set by the site template is blamed on the template
    (tmp_path / "site.toml").write_text(SITE.replace("https://", "http://"))
    (tmp_path / "line3.toml").write_text('[gateway]\nid = "line3"\n')
    with pytest.raises(ConfigError) as err:
        config_mod.load([tmp_path / "site.toml", tmp_path / "line3.toml"])
    assert [p.split(": ")[:2] for p in err.value.problems] == [["site.toml", "sinks.odoo.url"]]


def test_check_config_takes_layers_and_names_the_file_on_errors(tmp_path):
    (tmp_path / "site.toml").write_text(SITE)
    (tmp_path / "line3.toml").write_text('[gateway]\nid = "line3"\ncolour = "blue"\n')
    out = subprocess.run([*CLI, "check-config", "--config", str(tmp_path / "site.toml"),
                          "--config", str(tmp_path / "line3.toml")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "line3.toml: gateway.colour: unknown key" in out.stderr
    assert "site.toml+line3.toml: 1 error(s)" in out.stderr
    (tmp_path / "line3.toml").write_text('[gateway]\nid = "line3"\n')
    out = subprocess.run([*CLI, "check-config", str(tmp_path / "site.toml"), str(tmp_path / "line3.toml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("site.toml+line3.toml: ok: gateway line3")


def test_the_console_validates_an_edit_of_the_last_layer_merged_over_the_ones_below(tmp_path):
    from webui.configfile import ConfigFile, ConfigRejected
    (tmp_path / "site.toml").write_text(SITE)
    own = tmp_path / "line3.toml"
    own.write_text('[gateway]\nid = "line3"\n')
    cf = ConfigFile(own, tmp_path / "state", [tmp_path / "site.toml"])
    cfg, _ = cf.replace('[gateway]\nid = "line3"\n\n[service_levels]\nproduction = 600\n', "admin")
    assert cfg.gateway.environment == "prod" and cfg.service_levels["production"] == 600.0
    assert "odoo" in cfg.sinks                                       # from the site template
    with pytest.raises(ConfigRejected) as err:
        cf.replace('[gateway]\nid = "line3"\n[sinks.odoo]\nurl = "http://erp.example.com"\n', "admin")
    assert any(p.startswith("line3.toml: sinks.odoo.url: a prod gateway") for p in err.value.problems)
