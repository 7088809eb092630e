"""The console as a service of the gateway process: certificate, setup code, WSGI server, banner.

`service(supervisor, config_path)` is the `linebridge.services` entry point: it
returns None when the configuration has no `[webui]` section. `start()` makes
the TLS certificate on the first start, prints and logs the one-time setup
code while no admin exists, and serves the Flask app with cheroot (a
production, thread-pooled WSGI server with TLS from the standard library's ssl
module) in its own thread: requests never run on the gateway's event loop.
`stop()` stops the server within a few seconds.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from pathlib import Path
from typing import Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from webui.accounts import Accounts, Throttle
from webui.app import Console, create_app, metrics_token
from webui.bridge import Bridge
from webui.configfile import ConfigFile
from webui.logbuffer import LogBuffer
from webui.security import Sessions
from webui.tls import ensure_certificate, fingerprint

log = logging.getLogger("linebridge.webui")


class WebService:
    def __init__(self, supervisor: Any, config_path: Path) -> None:
        self.sup = supervisor
        self.cfg = supervisor.config.webui
        self.config_path = Path(config_path)
        self.banner: list[str] = []
        self.logs = LogBuffer()
        self.logs.install()
        self.server: wsgi.Server | None = None
        self.thread: threading.Thread | None = None
        self.port: int | None = None
        self.console: Console | None = None

    async def start(self) -> None:
        state = Path(self.sup.state_dir)
        accounts = Accounts(state)
        code = accounts.setup_code()  # written before the first request can ask for it
        fp = None
        adapter = None
        if self.cfg.tls:
            cert, key = await asyncio.to_thread(ensure_certificate, state, self.sup.config.gateway.id)
            fp = fingerprint(cert)
            adapter = BuiltinSSLAdapter(str(cert), str(key))
            adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2   # said, not left to the platform's default
        self.console = Console(
            bridge=Bridge(self.sup, asyncio.get_running_loop()), accounts=accounts,
            throttle=Throttle(self.cfg.login_attempts, self.cfg.login_window_s),
            sessions=Sessions(self.cfg.session_minutes), config_file=ConfigFile(self.config_path, state),
            logs=self.logs, state_dir=state, tls_fingerprint=fp, metrics_token=metrics_token(state))
        app = create_app(self.console, secure_cookies=self.cfg.tls)
        server = wsgi.Server((self.cfg.listen, self.cfg.port), app, numthreads=8, server_name="linebridge",
                             timeout=30, shutdown_timeout=3)
        if adapter is not None:
            server.ssl_adapter = adapter
        await asyncio.to_thread(server.prepare)  # binds now: a port in use fails the start, loudly
        self.port = server.bind_addr[1]
        self.server = server
        self.thread = threading.Thread(target=server.serve, name="webui", daemon=True)
        self.thread.start()
        scheme = "https" if self.cfg.tls else "http"
        host = "127.0.0.1" if self.cfg.listen in ("0.0.0.0", "::") else self.cfg.listen
        url = f"{scheme}://{host}:{self.port}"
        self.banner = [f"web UI: {url}" + (f" (listening on {self.cfg.listen})" if host != self.cfg.listen else "")]
        if fp:
            self.banner.append(f"web UI: TLS certificate SHA-256 {fp}")
        if code:
            self.banner.append(f"web UI: first visit: open {url}/setup and enter the one-time setup code {code}")
            log.warning("event=webui_setup_code code=%s url=%s/setup", code, url)
        log.info("event=webui_started url=%s tls=%s", url, self.cfg.tls)

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await asyncio.to_thread(server.stop)
            if self.thread is not None:
                await asyncio.to_thread(self.thread.join, 5.0)
            log.info("event=webui_stopped")
        self.logs.remove()


def service(supervisor: Any, config_path: Path | None) -> WebService | None:
    if getattr(supervisor.config, "webui", None) is None or config_path is None:
        return None
    return WebService(supervisor, config_path)
