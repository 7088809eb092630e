"""`webui.guard`: which sections a whole-file change touched, and when a stored secret may be used.

The end-to-end attacks are in test_attacks.py; these pin the rules on the
sections a technician edits (devices: MQTT and OPC-UA logins) where the
running gateway of those tests has no such device.
"""
from __future__ import annotations

import pytest

from webui.configfile import ConfigRejected
from webui.guard import Refused, admin_sections_changed, moved_secret_problems, technician_check

MQTT_DEVICE = {"type": "mqtt", "host": "broker.plant", "port": 1883, "username": "gw", "password": "s3cret"}
OPCUA_DEVICE = {"type": "opcua", "endpoint": "opc.tcp://press1:4840", "username": "gw", "password_env": "OPC_PW"}


@pytest.mark.parametrize("saved, change", [
    (MQTT_DEVICE, {"host": "evil.example"}), (MQTT_DEVICE, {"port": 1884}), (MQTT_DEVICE, {"username": "x"}),
    (OPCUA_DEVICE, {"endpoint": "opc.tcp://evil:4840"}), (OPCUA_DEVICE, {"username": "y"}),
])
def test_a_new_destination_needs_the_secret_typed(saved: dict, change: dict) -> None:
    masked = {k: ("********" if k == "password" else v) for k, v in saved.items()}
    problems = moved_secret_problems("devices", "d1", dict(masked, **change), saved)
    assert problems and all("must be typed" in p for p in problems)
    assert problems[0].startswith("devices.d1.password")
    typed = {k: v for k, v in dict(masked, **change).items() if not k.startswith("password")}
    assert moved_secret_problems("devices", "d1", dict(typed, password="typed"), saved) == []


@pytest.mark.parametrize("saved", [MQTT_DEVICE, OPCUA_DEVICE])
def test_the_saved_destination_keeps_its_stored_secret(saved: dict) -> None:
    masked = {k: ("********" if k == "password" else v) for k, v in saved.items()}
    assert moved_secret_problems("devices", "d1", dict(masked, poll_interval=2), saved) == []


def test_an_unsaved_section_has_no_stored_secret_to_lend() -> None:
    for key, value in (("password", "********"), ("password_env", "HOME"), ("password_file", "/x")):
        section = {"type": "mqtt", "host": "h", "username": "u", key: value}
        assert moved_secret_problems("devices", "new", section, None), key
    assert moved_secret_problems("devices", "new", {"type": "mqtt", "host": "h", "password": "typed"}, None) == []


def test_admin_sections_changed_compares_parsed_values() -> None:
    old = '[gateway]\nid = "gw"\n[webui]\nport = 8443\n[devices.a]\ntype = "x"\n'
    assert admin_sections_changed(old, old.replace("port = 8443", "port = 0x20FB")) == []   # same value
    assert admin_sections_changed(old, old.replace("port = 8443", "port = 9443")) == ["webui"]
    assert admin_sections_changed(old, old + '[files]\nsecrets = ["/"]\n') == ["files"]
    assert admin_sections_changed(old, old.replace('type = "x"', 'type = "y"')) == []
    assert admin_sections_changed(old, old.replace("[webui]\nport = 8443\n", "")) == ["webui"]


def test_technician_check_names_every_admin_section_touched() -> None:
    old = '[gateway]\nid = "gw"\n[store]\nmap_size_mb = 64\n'
    with pytest.raises(Refused, match=r"\[gateway\], \[store\]"):
        technician_check(old, '[gateway]\nid = "gw2"\n[store]\nmap_size_mb = 65\n')
    saved = '[devices.m]\ntype = "mqtt"\nhost = "h"\nusername = "u"\npassword = "p"\n'
    with pytest.raises(ConfigRejected, match="devices.m.password_env"):
        technician_check(saved, saved.replace('host = "h"', 'host = "evil"').replace('password = "p"',
                                                                                      'password_env = "ODOO_KEY"'))
    technician_check(saved, saved + "poll_interval = 2\n")
