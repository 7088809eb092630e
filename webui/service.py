"""The console as a service of the gateway process: certificate, setup code, WSGI server, banner.

`service(supervisor, config_path)` is the `linebridge.services` entry point: it
returns None when the configuration has no `[webui]` section. `start()` makes
the TLS certificate on the first start, prints and logs the one-time setup
code while no admin exists, and serves the Flask app with cheroot (a
production, thread-pooled WSGI server with TLS from the standard library's ssl
module) in its own thread: requests never run on the gateway's event loop.
That thread is watched by a task of the gateway's supervisor (`webui:server`):
if serving ends unasked, the death is logged and counted and the server binds
and serves again after a backoff. `stop()` stops the server within a few seconds.
"""
from __future__ import annotations

import asyncio
import logging
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
#: the server's name among the gateway's supervised tasks
TASK = "webui:server"


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
        self._app: Any = None
        self._adapter: BuiltinSSLAdapter | None = None

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
        self.console = Console(
            bridge=Bridge(self.sup, asyncio.get_running_loop()), accounts=accounts,
            throttle=Throttle(self.cfg.login_attempts, self.cfg.login_window_s),
            sessions=Sessions(self.cfg.session_minutes), config_file=ConfigFile(self.config_path, state),
            logs=self.logs, state_dir=state, tls_fingerprint=fp, metrics_token=metrics_token(state))
        app = create_app(self.console, secure_cookies=self.cfg.tls)
        self._app, self._adapter = app, adapter
        server = self._new_server()
        await asyncio.to_thread(server.prepare)  # binds now: a port in use fails the start, loudly
        self.port = server.bind_addr[1]
        self.server = server
        # the server's thread is watched by a task of the gateway's supervisor: if it dies, it is
        # logged, counted and served again (on the same port) after a backoff
        self.sup.tasks.start(TASK, self._serve)
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

    def _new_server(self) -> wsgi.Server:
        server = wsgi.Server((self.cfg.listen, self.port or self.cfg.port), self._app, numthreads=8,
                             server_name="linebridge", timeout=30, shutdown_timeout=3)
        if self._adapter is not None:
            server.ssl_adapter = self._adapter
        return server

    async def _serve(self, stop: asyncio.Event) -> None:
        """One life of the server: serve in its thread until `stop`; raise if the thread ends unasked."""
        server = self.server
        if server is None or server.socket is None:  # a restart: bind again
            server = self._new_server()
            await asyncio.to_thread(server.prepare)
            self.server = server
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[BaseException | None] = loop.create_future()

        def serve() -> None:
            error: BaseException | None = None
            try:
                server.serve()
            except BaseException as exc:  # handed to the supervisor, which logs it with its traceback
                error = exc
            if not loop.is_closed():
                loop.call_soon_threadsafe(lambda: ended.done() or ended.set_result(error))

        self.thread = threading.Thread(target=serve, name="webui", daemon=True)
        self.thread.start()
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({ended, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not ended.done() or stop.is_set():
                await asyncio.to_thread(server.stop)
                await asyncio.to_thread(self.thread.join, 5.0)
            self.server = None
        error = ended.result() if ended.done() else None
        if not stop.is_set():
            raise RuntimeError("the web UI server stopped serving") from error

    async def stop(self) -> None:
        if self.sup.tasks.running(TASK):
            await self.sup.tasks.stop([TASK], 8.0)
            log.info("event=webui_stopped")
        elif self.server is not None:  # started, never served
            server, self.server = self.server, None
            await asyncio.to_thread(server.stop)
        self.logs.remove()


def service(supervisor: Any, config_path: Path | None) -> WebService | None:
    if getattr(supervisor.config, "webui", None) is None or config_path is None:
        return None
    return WebService(supervisor, config_path)
