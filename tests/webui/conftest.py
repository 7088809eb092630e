"""A real gateway with its console for the web UI tests: `linebridge run` against real peers.

The module-scoped `gateway` fixture starts the Odoo sandbox (in process, a free
port), the sandbox plant (`linebridge sandbox plant`, a free port) and the
gateway itself as a separate process with the demo configuration pointed at
them and a `[webui]` on a free port, and waits until the console answers.
`Console` is a small HTTPS client that logs in and sends the CSRF token.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from gateway.sandbox.odoo import OdooSandbox
from tests.helpers import free_port, linebridge, port_open, stop, wait_for

ADMIN_PASSWORD = "correct horse battery"
#: Debian's chromium, driven headless by Playwright (tests/setup.sh installs it)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class Gateway:
    base_url: str
    port: int
    state_dir: Path
    config_path: Path
    log_path: Path
    odoo: OdooSandbox
    plant_port: int

    def setup_code(self) -> str:
        return (self.state_dir / "webui" / "setup-code").read_text(encoding="utf-8").strip()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def demo_config(plant_port: int, odoo_url: str, webui_port: int) -> str:
    text = resources.files("gateway").joinpath("demo.toml").read_text(encoding="utf-8")
    text = text.replace("port = 5020", f"port = {plant_port}").replace("http://127.0.0.1:8069", odoo_url)
    return text + f'\n[webui]\nlisten = "127.0.0.1"\nport = {webui_port}\nlogin_attempts = 5\n'


def start_gateway(tmp: Path, config: Callable[[int, str, int], str] | None = None,
                  odoo_api_key: str = "admin") -> Iterator[Gateway]:
    """Run the peers and the gateway; `config(plant_port, odoo_url, webui_port)` makes its configuration
    (default: the demo's); the Odoo sandbox accepts `odoo_api_key`."""
    odoo = OdooSandbox(host="127.0.0.1", port=0, api_key=odoo_api_key)
    odoo.start()
    plant_port, ui_port = free_port(), free_port()
    plant = linebridge(["sandbox", "plant", "--port", str(plant_port)], tmp / "plant.log")
    path = tmp / "linebridge.toml"
    path.write_text((config or demo_config)(plant_port, odoo.url, ui_port), encoding="utf-8")
    gw = Gateway(f"https://127.0.0.1:{ui_port}", ui_port, tmp / "state", path, tmp / "gateway.log", odoo,
                 plant_port)
    proc = linebridge(["run", "--config", str(path), "--state-dir", str(gw.state_dir)], gw.log_path)
    try:
        wait_for(lambda: port_open(plant_port), 20, "the sandbox plant")
        wait_for(lambda: proc.poll() is None and port_open(ui_port), 30, f"the console on {ui_port}")
        wait_for(lambda: (gw.state_dir / "webui").exists(), 10, "the console's state")
        yield gw
    finally:
        code = stop(proc)
        stop(plant)
        odoo.stop()
        assert code == 0, f"the gateway exited with {code}:\n{gw.log()[-3000:]}"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from start_gateway(tmp_path_factory.mktemp("gw"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Console:
    """An HTTPS client of the console that keeps its cookies and sends the CSRF token on changes."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.http = httpx.Client(base_url=gw.base_url, verify=False, timeout=60.0, follow_redirects=False)
        self.csrf: str | None = None

    def form_token(self, path: str) -> str:
        page = self.http.get(path, follow_redirects=True)
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert match, f"no CSRF token on {path}: {page.status_code} {page.text[:300]}"
        return match.group(1)

    def setup(self, name: str = "admin", password: str = ADMIN_PASSWORD) -> httpx.Response:
        token = self.form_token("/setup")
        return self.http.post("/setup", data={"csrf_token": token, "code": self.gw.setup_code(), "name": name,
                                              "password": password, "password2": password})

    def login(self, name: str = "admin", password: str = ADMIN_PASSWORD) -> httpx.Response:
        token = self.form_token("/login")
        resp = self.http.post("/login", data={"csrf_token": token, "name": name, "password": password})
        if resp.status_code == 302 and "/login" not in resp.headers.get("location", ""):
            self.csrf = self.http.get("/api/v1/me").json()["csrf_token"]
        return resp

    def api(self, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf} if self.csrf and method != "GET" else {}
        return self.http.request(method, "/api/v1" + path, json=body, headers=headers, **kw)

    def close(self) -> None:
        self.http.close()


def odoo_call(gw: Gateway, model: str, method: str, args: list[Any], kw: dict[str, Any] | None = None) -> Any:
    """One `execute_kw` on the gateway's Odoo sandbox as its admin, as a planner would (JSON-RPC)."""
    body = {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
        "service": "object", "method": "execute_kw",
        "args": ["sandbox", 2, "admin", model, method, args] + ([kw] if kw else [])}}
    reply = httpx.post(f"{gw.odoo.url}/jsonrpc", json=body, timeout=10).json()
    assert "error" not in reply, reply
    return reply["result"]


def admin_console(gw: Gateway) -> Console:
    """A logged-in admin console, running the first setup if it has not been done."""
    c = Console(gw)
    if (gw.state_dir / "webui" / "setup-code").exists():
        assert c.setup().status_code == 302
    resp = c.login()
    assert resp.status_code == 302, resp.text
    return c


@contextmanager
def admin_page(browser: Browser, gw: Gateway, viewport: dict[str, int] | None = None,
               timeout_ms: int = 20_000) -> Iterator[Page]:
    """A Chromium page logged in as the admin through the login form (the first setup done if
    needed); the context closes after, and a script error on any page fails the test."""
    admin_console(gw).close()
    context = browser.new_context(ignore_https_errors=True, viewport=viewport or {"width": 1280, "height": 800},
                                  base_url=gw.base_url)
    context.set_default_timeout(timeout_ms)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto("/login")
        page.get_by_label("User name").fill("admin")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        yield page
    finally:
        context.close()
    assert not errors, f"script errors on the console's pages: {errors}"
