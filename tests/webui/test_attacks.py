"""The attacks of issue #16, replayed against a running gateway over HTTPS: each must now fail.

One gateway (its own process, the demo configuration with a distinctive Odoo
key, an MQTT sink with a stored password and `[files]` declaring a secrets
directory) and a capture server: a TCP listener that records every byte any
client sends it, standing in for the attacker's machine. A technician tries
to make the gateway send a stored secret or a file's content there, to
change admin sections through the whole-file editor, and to create names the
pages and URLs cannot carry. Each refusal is checked, and so is the control:
the capture server does receive what a test is allowed to send.
"""
from __future__ import annotations

import os
import secrets
import socket
import threading
from pathlib import Path
from typing import Iterator

import pytest

from tests.webui.conftest import Console, Gateway, admin_console, demo_config, start_gateway
from tests.webui.test_security import add_user, console_ready

ODOO_KEY = "stored-odoo-key-" + secrets.token_hex(8)
MQTT_PASSWORD = "stored-mqtt-password-" + secrets.token_hex(8)
DEVICE_PASSWORD = "stored-device-password-" + secrets.token_hex(8)
#: a machine publishing to an MQTT broker that needs a login (the broker is down: the driver retries)
MQTT_DEVICE = f"""
[devices.mq1]
type = "mqtt"
host = "127.0.0.1"
port = 1
username = "gw"
password = "{DEVICE_PASSWORD}"
machine = "CNC-01"

[devices.mq1.topics.state]
topic = "plant/mq1/state"
format = "json"

[devices.mq1.topics.state.fields]
parts = {{ path = "counters.good", type = "int" }}
"""


class Capture:
    """A TCP listener on a free loopback port that keeps whatever each connection sends.

    With `upstream`, it passes each connection on to that port (a recording proxy), so a
    client that got through would do its whole exchange and show everything it sends.
    """

    def __init__(self, upstream: int | None = None) -> None:
        self.upstream = upstream
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        up = socket.create_connection(("127.0.0.1", self.upstream), timeout=5) if self.upstream else None
        if up is not None:
            threading.Thread(target=self._pump, args=(up, conn), daemon=True).start()
        conn.settimeout(None if up else 1.5)
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                with self._lock:
                    self.received.append(chunk)
                if up is not None:
                    up.sendall(chunk)
        except OSError:
            pass
        finally:
            conn.close()
            if up is not None:
                up.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def everything(self) -> bytes:
        with self._lock:
            return b"".join(self.received)

    def clear(self) -> None:
        with self._lock:
            self.received.clear()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("attacks")
    (tmp / "secrets").mkdir()
    (tmp / "secrets" / "odoo.key").write_text(ODOO_KEY + "\n")

    def config(plant_port: int, odoo_url: str, webui_port: int) -> str:
        text = demo_config(plant_port, odoo_url, webui_port).replace('api_key = "admin"', f'api_key = "{ODOO_KEY}"')
        return text + (f'\n[files]\nsecrets = ["{tmp / "secrets"}"]\n'
                       f'\n[sinks.up]\ntype = "mqtt"\nurl = "mqtt://127.0.0.1:1"\nusername = "gw"\n'
                       f'password = "{MQTT_PASSWORD}"\ntimeout = 2.0\n' + MQTT_DEVICE)
    for g in start_gateway(tmp, config, odoo_api_key=ODOO_KEY):
        yield console_ready(g)


@pytest.fixture(scope="module")
def capture(gw: Gateway) -> Iterator[Capture]:
    """The attacker's Odoo: a recording proxy in front of the sandbox (it answers like Odoo)."""
    c = Capture(upstream=gw.odoo.port)
    yield c
    c.close()


@pytest.fixture(scope="module")
def broker() -> Iterator[Capture]:
    """The attacker's MQTT broker: it records the CONNECT packet (user name and password) and answers nothing."""
    c = Capture()
    yield c
    c.close()


@pytest.fixture(scope="module")
def admin(gw: Gateway) -> Iterator[Console]:
    c = admin_console(gw)
    yield c
    c.close()


@pytest.fixture(scope="module")
def tech(gw: Gateway, admin: Console) -> Iterator[Console]:
    c = add_user(admin, "mallory", "technician", "mallory's long password")
    yield c
    c.close()


def the_secrets(gw: Gateway) -> list[bytes]:
    """What must never reach the capture server, a page or the log."""
    webui = gw.state_dir / "webui"
    device_key = (gw.state_dir / "keys" / "device.key").read_bytes()
    users = (webui / "users.json").read_text()
    hashes = [line.split('"')[3].encode() for line in users.splitlines() if '"password"' in line]
    out = [ODOO_KEY.encode(), MQTT_PASSWORD.encode(), DEVICE_PASSWORD.encode(), device_key.strip()[-24:]] + hashes
    shadow = Path("/etc/shadow")
    if os.access(shadow, os.R_OK):
        out += [line.encode() for line in shadow.read_text().splitlines() if line.count(":") > 2 and "$" in line]
    return out


def assert_nothing_leaked(gw: Gateway, capture: Capture, *answers: str) -> None:
    got = capture.everything()
    log = gw.log().encode()
    for secret in the_secrets(gw):
        assert secret not in got, f"the capture server received a secret ({secret[:12]!r}...)"
        assert secret not in log, f"the log holds a secret ({secret[:12]!r}...)"
        for answer in answers:
            assert secret.decode(errors="replace") not in answer, f"an answer holds a secret ({secret[:12]!r}...)"


def odoo_section(c: Console) -> dict:
    resp = c.api("GET", "/connections/odoo")
    assert resp.status_code == 200, resp.text
    section = resp.json()["section"]
    assert section["api_key"] == "********"
    return section


# -- 1. secrets never leave -----------------------------------------------------------------------

def test_a_test_towards_another_server_does_not_get_the_stored_odoo_key(gw: Gateway, tech: Console,
                                                                       admin: Console, capture: Capture) -> None:
    capture.clear()
    for who in (tech, admin):
        moved = dict(odoo_section(who), url=f"http://127.0.0.1:{capture.port}", timeout=2.0)
        resp = who.api("POST", "/connections/odoo/test", {"section": moved})
        assert resp.status_code == 422, resp.text
        assert any("sinks.odoo.api_key" in p and "must be typed" in p for p in resp.json()["problems"])
        for key, value in (("database", "other"), ("login", "someone-else")):
            resp = who.api("POST", "/connections/odoo/test", {"section": dict(odoo_section(who), **{key: value})})
            assert resp.status_code == 422, f"{key}: {resp.text}"
        # a section that is not saved at all has no stored key to lend either
        resp = who.api("POST", "/connections/copy/test", {"section": moved})
        assert resp.status_code == 422, resp.text
    assert capture.everything() == b"", "the gateway connected to the capture server"
    assert_nothing_leaked(gw, capture, resp.text)


def test_the_saved_destination_may_be_tested_with_the_stored_key(gw: Gateway, tech: Console) -> None:
    resp = tech.api("POST", "/connections/odoo/test", {"section": dict(odoo_section(tech), timeout=5.0)})
    assert resp.status_code == 200, resp.text
    assert resp.json()["blockers"] == 0, resp.json()


def test_a_typed_key_goes_where_the_person_says(gw: Gateway, tech: Console, capture: Capture) -> None:
    """The control: the capture server does receive what a test may send, so its silence above means something."""
    capture.clear()
    typed = dict(odoo_section(tech), url=f"http://127.0.0.1:{capture.port}", timeout=2.0,
                 api_key="typed-by-the-technician")
    resp = tech.api("POST", "/connections/odoo/test", {"section": typed})
    assert resp.status_code == 200, resp.text
    assert b"typed-by-the-technician" in capture.everything()
    assert_nothing_leaked(gw, capture, resp.text)


@pytest.mark.parametrize("where", ["device key", "users.json", "tls key", "/etc/shadow", "dot-dot", "symlink",
                                   "environment"])
def test_a_key_file_outside_the_secrets_directory_is_refused(gw: Gateway, tech: Console, admin: Console,
                                                              capture: Capture, where: str) -> None:
    secrets_dir = gw.state_dir.parent / "secrets"
    link = secrets_dir / "innocent.key"
    if not link.is_symlink():
        link.symlink_to(gw.state_dir / "keys" / "device.key")
    reference = {"device key": ("api_key_file", str(gw.state_dir / "keys" / "device.key")),
                 "users.json": ("api_key_file", str(gw.state_dir / "webui" / "users.json")),
                 "tls key": ("api_key_file", str(gw.state_dir / "webui" / "tls.key")),
                 "/etc/shadow": ("api_key_file", "/etc/shadow"),
                 "dot-dot": ("api_key_file", f"{secrets_dir}/../state/keys/device.key"),
                 "symlink": ("api_key_file", str(link)),
                 "environment": ("api_key_env", "HOME")}[where]
    capture.clear()
    for who in (tech, admin):
        section = {k: v for k, v in odoo_section(who).items() if k != "api_key"}
        # elsewhere, and (for a file: the path itself is refused) the saved server
        for url in [f"http://127.0.0.1:{capture.port}"] + ([section["url"]] if reference[0] == "api_key_file" else []):
            body = {"section": dict(section, url=url, timeout=2.0, **{reference[0]: reference[1]})}
            resp = who.api("POST", "/connections/odoo/test", body)
            assert resp.status_code == 422, f"{who.gw} {url}: {resp.text}"
            assert any(f"sinks.odoo.{reference[0]}" in p for p in resp.json()["problems"]), resp.json()
            assert_nothing_leaked(gw, capture, resp.text)
    # nor can the admin save it (the technician may not change connections at all)
    section = {k: v for k, v in odoo_section(admin).items() if k != "api_key"}
    if reference[0] == "api_key_file":
        resp = admin.api("PUT", "/connections/odoo", {"section": dict(section, api_key_file=reference[1])})
        assert resp.status_code == 422, resp.text
        assert any("sinks.odoo.api_key_file" in p for p in resp.json()["problems"])
    assert capture.everything() == b""


def test_a_key_file_inside_the_declared_directory_is_accepted(gw: Gateway, admin: Console) -> None:
    section = {k: v for k, v in odoo_section(admin).items() if k != "api_key"}
    path = gw.state_dir.parent / "secrets" / "odoo.key"
    resp = admin.api("POST", "/connections/odoo/test", {"section": dict(section, api_key_file=str(path))})
    assert resp.status_code == 200 and resp.json()["blockers"] == 0, resp.text


def test_a_test_towards_another_broker_does_not_get_the_stored_mqtt_password(gw: Gateway, tech: Console,
                                                                             broker: Capture) -> None:
    capture = broker
    capture.clear()
    section = tech.api("GET", "/connections/up").json()["section"]
    assert section["password"] == "********"
    for change in ({"url": f"mqtt://127.0.0.1:{capture.port}"}, {"username": "eve"}):
        resp = tech.api("POST", "/connections/up/test", {"section": dict(section, **change)})
        assert resp.status_code == 422, resp.text
        assert any("sinks.up.password" in p for p in resp.json()["problems"])
    assert capture.everything() == b""
    typed = dict(section, url=f"mqtt://127.0.0.1:{capture.port}", password="typed-mqtt-password")
    resp = tech.api("POST", "/connections/up/test", {"section": typed})
    assert resp.status_code == 200, resp.text
    assert b"typed-mqtt-password" in capture.everything(), "the control: a typed password does go there"
    assert_nothing_leaked(gw, capture, resp.text)


def test_a_device_test_read_towards_another_broker_does_not_get_the_stored_password(
        gw: Gateway, tech: Console, broker: Capture) -> None:
    broker.clear()
    section = tech.api("GET", "/devices/mq1").json()["section"]
    assert section["password"] == "********"
    for change in ({"port": broker.port}, {"host": "localhost"}, {"username": "eve"}):
        resp = tech.api("POST", "/devices/mq1/test-read", {"section": dict(section, **change)})
        assert resp.status_code == 422, resp.text
        assert any("devices.mq1.password" in p and "must be typed" in p for p in resp.json()["problems"])
    assert broker.everything() == b""
    resp = tech.api("POST", "/devices/mq1/test-read", {"section": dict(section, port=broker.port,
                                                                       password="typed-device-password")})
    assert resp.status_code == 200, resp.text
    assert b"typed-device-password" in broker.everything(), "the control: a typed password does go there"
    assert_nothing_leaked(gw, broker, resp.text)


def test_a_technician_cannot_save_a_device_that_sends_a_stored_secret_elsewhere(gw: Gateway, tech: Console,
                                                                               admin: Console) -> None:
    section = tech.api("GET", "/devices/mq1").json()["section"]
    before = original = gw.config_path.read_text()
    moved = dict(section, host="evil.example")
    assert tech.api("PUT", "/devices/mq1", {"section": moved}).status_code == 422
    env = {k: v for k, v in moved.items() if k != "password"} | {"password_env": "HOME"}
    resp = tech.api("PUT", "/devices/mq1", {"section": env})
    assert resp.status_code == 422 and any("devices.mq1.password_env" in p for p in resp.json()["problems"])
    masked = before.replace(DEVICE_PASSWORD, "********").replace(ODOO_KEY, "********").replace(MQTT_PASSWORD,
                                                                                              "********")
    text = masked.replace('host = "127.0.0.1"\nport = 1\n', 'host = "evil.example"\nport = 1\n', 1)
    assert text != masked
    resp = tech.api("PUT", "/config", {"text": text})
    assert resp.status_code == 422, "nor through the whole file"
    assert any("devices.mq1.password" in p for p in resp.json()["problems"])
    assert tech.api("PUT", "/config", {"text": masked.replace("poll_interval = 0.5", "poll_interval = 0.7")}
                    ).status_code == 200, "a whole-file edit that moves no secret is saved"
    before = gw.config_path.read_text()
    assert gw.config_path.read_text() == before
    # the same destination keeps its stored password
    resp = tech.api("PUT", "/devices/mq1", {"section": dict(section, client_id="mq1-renamed")})
    assert resp.status_code == 200, resp.text
    assert DEVICE_PASSWORD in gw.config_path.read_text()
    assert admin.api("PUT", "/config", {"text": original}).status_code == 200


def test_an_error_answer_does_not_quote_a_file(gw: Gateway, admin: Console) -> None:
    text = gw.config_path.read_text() + f'\n[gateway2]\nx = """{ODOO_KEY}"""\n'
    resp = admin.api("PUT", "/config", {"text": text})
    assert resp.status_code == 422
    assert ODOO_KEY not in resp.text


# -- 2. roles bound by section --------------------------------------------------------------------

@pytest.mark.parametrize("old, new, section", [
    ('listen = "127.0.0.1"', 'listen = "0.0.0.0"', "[webui]"),
    ("login_attempts = 5", "login_attempts = 100", "[webui]"),
    ("login_attempts = 5", 'login_attempts = 5\ntimesyncd_conf = "/etc/shadow"', "[webui]"),
    ('site = "demo"', 'site = "elsewhere"', "[gateway]"),
    ('database = "sandbox"', 'database = "other"', "[sinks]"),
    ("[store]", "[store]\njournal_keep = 1000", "[store]"),
])
def test_a_technician_cannot_change_an_admin_section_through_the_whole_file(
        gw: Gateway, tech: Console, old: str, new: str, section: str) -> None:
    before = gw.config_path.read_text()
    assert old in before
    resp = tech.api("PUT", "/config", {"text": before.replace(old, new, 1)})
    assert resp.status_code == 403, resp.text
    assert section in resp.json()["error"]
    assert gw.config_path.read_text() == before
    assert "event=webui_change_refused user=mallory" in gw.log()


def test_a_technician_may_edit_devices_through_the_whole_file_and_keeps_the_secrets(
        gw: Gateway, tech: Console, admin: Console) -> None:
    before = gw.config_path.read_text()
    assert "poll_interval = 0.5" in before
    resp = tech.api("PUT", "/config", {"text": before.replace("poll_interval = 0.5", "poll_interval = 0.6", 1)})
    assert resp.status_code == 200, resp.text
    assert ODOO_KEY in gw.config_path.read_text()
    assert admin.api("PUT", "/config", {"text": before}).status_code == 200


def test_a_technician_cannot_change_connections_through_the_sections(gw: Gateway, tech: Console) -> None:
    section = odoo_section(tech)
    before = gw.config_path.read_text()
    for method, path, body in (("PUT", "/connections/odoo", {"section": dict(section, url="http://evil:1")}),
                               ("POST", "/connections", {"name": "evil", "section": section}),
                               ("DELETE", "/connections/odoo", None)):
        resp = tech.api(method, path, body)
        assert resp.status_code == 403, f"{method} {path}: {resp.text}"
        assert "connections" in resp.json()["error"]
    assert gw.config_path.read_text() == before


def test_a_technician_cannot_roll_back_over_an_admin_change(gw: Gateway, tech: Console, admin: Console) -> None:
    before = gw.config_path.read_text()
    resp = admin.api("PUT", "/config", {"text": before.replace('site = "demo"', 'site = "plant2"')})
    assert resp.status_code == 200, resp.text
    entry = resp.json()["saved"]["id"]
    resp = tech.api("POST", f"/config/history/{entry - 1}/rollback")
    assert resp.status_code == 403 and "[gateway]" in resp.json()["error"], resp.text
    assert admin.api("POST", f"/config/history/{entry - 1}/rollback").status_code == 200


# -- 3, 4. secrets survive edits, and history shows none ------------------------------------------

def test_the_placeholder_in_a_whole_file_edit_keeps_the_stored_key(gw: Gateway, admin: Console) -> None:
    before = gw.config_path.read_text()
    masked = before.replace(ODOO_KEY, "********").replace(MQTT_PASSWORD, "********")
    resp = admin.api("PUT", "/config", {"text": masked.replace("rate = 20.0", "rate = 19.0", 1)})
    assert resp.status_code == 200, resp.text
    saved = gw.config_path.read_text()
    assert ODOO_KEY in saved and MQTT_PASSWORD in saved and "********" not in saved
    assert "secret changed" not in resp.json()["saved"]["what"]
    assert admin.api("GET", "/connections/odoo/test").status_code == 405   # (the test is a POST)
    assert admin.api("POST", "/connections/odoo/test").json()["blockers"] == 0, "the sink still logs in"
    # a placeholder where no secret is stored is refused, not saved as the secret
    resp = admin.api("PUT", "/config", {"text": masked.replace('username = "gw"', 'username = "gw"\n', 1)
                                        .replace("[sinks.up]", '[sinks.up2]\ntype = "mqtt"\nurl = "mqtt://127.0.0.1:1"\n'
                                                 'username = "x"\npassword = "********"\n\n[sinks.up]')})
    assert resp.status_code == 422 and any("sinks.up2.password" in p for p in resp.json()["problems"])
    assert admin.api("PUT", "/config", {"text": before}).status_code == 200


@pytest.mark.parametrize("form", ['"""{}"""', "'''{}'''", '"""\n{}"""', "'{}'"])
@pytest.mark.parametrize("key", ['api_key', '"api_key"', "'api_key'", '"api\\u005fkey"'])
def test_history_records_a_secret_change_without_the_value(gw: Gateway, admin: Console, form: str,
                                                           key: str) -> None:
    before = gw.config_path.read_text()
    new_key = "new-odoo-key-" + secrets.token_hex(6)
    text = before.replace(f'api_key = "{ODOO_KEY}"', f"{key} = {form.format(new_key)}")
    assert text != before
    resp = admin.api("PUT", "/config", {"text": text})
    assert resp.status_code == 200, resp.text
    entry = resp.json()["saved"]
    assert "secret changed: sinks.odoo.api_key" in entry["what"]
    diff = admin.api("GET", f"/config/history/{entry['id']}").json()["diff"]
    assert "secret changed" in diff
    for secret in (new_key, ODOO_KEY):
        assert secret not in diff and secret not in str(admin.api("GET", "/config/history").json())
    back = admin.api("PUT", "/config", {"text": before})
    assert back.status_code == 200
    assert new_key not in admin.api("GET", f"/config/history/{back.json()['saved']['id']}").text


# -- 6. login throttling (its own gateway: its own throttle) --------------------------------------
# (in test_throttle.py)

# -- 7. names -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["<script>alert(1)</script>", "a b", "a/b", "x" * 200_000, "", "ü", ".hidden"])
@pytest.mark.parametrize("what", ["devices", "rules", "machines"])
def test_names_outside_the_pattern_are_refused(gw: Gateway, tech: Console, what: str, name: str) -> None:
    sample = {"devices": "cnc01", "rules": "cnc01_parts", "machines": "CNC-01"}[what]
    section = tech.api("GET", f"/{what}/{sample}").json()["section"]
    before = gw.config_path.read_text()
    resp = tech.api("POST", f"/{what}", {"name": name, "section": section})
    assert resp.status_code == 422, resp.text[:300]
    assert len(resp.text) < 2000, "the refusal does not echo a huge name back"
    assert gw.config_path.read_text() == before


def test_a_tag_name_outside_the_pattern_is_refused(gw: Gateway, tech: Console) -> None:
    dev = tech.api("GET", "/devices/cnc01").json()["section"]
    tags = dict(dev["tags"])
    tags["<img src=x>"] = tags.pop("running")
    resp = tech.api("PUT", "/devices/cnc01", {"section": dict(dev, tags=tags)})
    assert resp.status_code == 422
    assert any("devices.cnc01.tags" in p for p in resp.json()["problems"]), resp.json()


def test_a_name_in_the_pattern_can_be_created_and_deleted(gw: Gateway, tech: Console) -> None:
    section = tech.api("GET", "/machines/CNC-01").json()["section"]
    resp = tech.api("POST", "/machines", {"name": "Line-2.press_3", "section": section})
    assert resp.status_code == 200, resp.text
    assert tech.api("DELETE", "/machines/Line-2.press_3").status_code == 200


# -- what held, kept: TLS 1.2 or later only -------------------------------------------------------

@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_the_console_speaks_tls_1_2_or_later_only(gw: Gateway) -> None:
    import ssl

    def handshake(low: ssl.TLSVersion, high: ssl.TLSVersion) -> str:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.minimum_version, ctx.maximum_version = low, high
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as tls:
                return tls.version() or ""
    assert handshake(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED) == "TLSv1.3"
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        with pytest.raises(ssl.SSLError):
            handshake(old, old)
