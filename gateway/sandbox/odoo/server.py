"""HTTP front of the Odoo sandbox: routes, JSON-RPC, XML-RPC and JSON-2 envelopes, and the OdooSandbox.

Owns the wire: ``POST /jsonrpc`` (Content-Type must be application/json,
"Invalid JSON data" / "Invalid JSON-RPC data" as HTTP 400 text/html, params
spread into ``RPC.jsonrpc(service, method, args)`` so missing or array params
fail as in Odoo, no ``result`` key when a method returns None),
``/web/session/authenticate`` (session info + session_id cookie),
``/web/webclient/version_info``, ``/xmlrpc/2/<service>`` (integer fault codes;
None cannot be marshalled, so a method returning None faults *after* its
commit) and the legacy ``/xmlrpc/<service>`` (string fault codes), and from
Odoo 19 ``GET /web/version`` (and ``/json/version``) and ``/json/2/...`` (see
``json2.py``; a plain 404 page before 19, as Odoo 16-18 have no such routes).  The sandbox's own
``/sandbox/faults`` (loopback clients only) switches injected faults
(``faults.py``); the handler applies a request's latency, proxy error page or
dropped connection, the service its bad key or serialization failure.  The
server is the stdlib's threaded HTTP server; the data is serialized by the
service lock.  It does not know any model.
"""
from __future__ import annotations

import html
import ipaddress
import json
import logging
import secrets
import signal
import socket
import threading
import xmlrpc.client
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from . import persist
from .demo import seed
from .errors import AccessDenied, AccessError, jsonrpc_error, xmlrpc_fault, xmlrpc_legacy_fault
from .faults import Faults, proxy_error_page
from .json2 import Json2
from .models import build_registry, qc
from .orm import Database, Environment
from .service import ADMIN_UID, OdooService
from .versions import OdooVersion

log = logging.getLogger("linebridge.sandbox.odoo")
JSON_TYPES = ("application/json", "application/json-rpc")


class RPC:
    """Named like Odoo's controller so argument errors read 'RPC.jsonrpc() missing ...'."""

    def __init__(self, service: OdooService) -> None:
        self.service = service

    def jsonrpc(self, service: str, method: str, args: Any) -> Any:
        return self.service.dispatch_rpc(service, method, args)


class _Reply:
    def __init__(self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status, self.content_type, self.body = status, content_type, body
        self.headers = headers or {}


def _bad_request(description: str) -> _Reply:
    page = ('<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<title>400 Bad Request</title>\n'
            f"<h1>Bad Request</h1>\n<p>{html.escape(description)}</p>\n")
    return _Reply(400, "text/html; charset=utf-8", page.encode())


def _not_found() -> _Reply:
    page = ('<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<title>404 Not Found</title>\n'
            "<h1>Not Found</h1>\n<p>The requested URL was not found on the server. If you entered the URL "
            "manually please check your spelling and try again.</p>\n")
    return _Reply(404, "text/html; charset=utf-8", page.encode())


def _json(payload: dict[str, Any], headers: dict[str, str] | None = None) -> _Reply:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return _Reply(200, "application/json; charset=utf-8", body, headers)


class OdooApp:
    """Routes one HTTP request to the service and renders Odoo's reply."""

    def __init__(self, service: OdooService) -> None:
        self.service = service
        self.rpc = RPC(service)
        self.json2 = Json2(service)

    def handle(self, method: str, path: str, content_type: str, body: bytes,
               headers: Mapping[str, str] | None = None) -> _Reply:
        path = path.split("?", 1)[0]
        version = self.service.version
        json_routes: dict[str, Callable[[dict], Any]] = {
            "/jsonrpc": lambda p: self.rpc.jsonrpc(**p),
            "/web/session/authenticate": self._session_authenticate,
            "/web/webclient/version_info": lambda p: version.exp_version(),
        }
        if path in ("/web/version", "/json/version") and version.has_json2:  # Odoo 19's rpc addon; 404 before
            return _Reply(200, "application/json; charset=utf-8", json.dumps(version.web_version()).encode())
        if (path == "/json/2" or path.startswith("/json/2/")) and version.has_json2:
            return self._json2(method, path, content_type, body, headers or {})
        if path in json_routes:
            return self._json_route(path, content_type, body, json_routes[path])
        if path.startswith("/xmlrpc/"):
            if method != "POST":
                return _Reply(405, "text/html; charset=utf-8", b"Method Not Allowed")
            rest = path[len("/xmlrpc/"):]
            if rest.startswith("2/") and "/" not in rest[2:]:
                return self._xmlrpc(rest[2:], body, xmlrpc_fault)
            if "/" not in rest:
                return self._xmlrpc(rest, body, xmlrpc_legacy_fault)
        return _not_found()

    # -- JSON-2 ---------------------------------------------------------------
    def _json2(self, method: str, path: str, content_type: str, body: bytes, headers: Mapping[str, str]) -> _Reply:
        if content_type.split(";", 1)[0].strip().lower() != "application/json":
            return _bad_request(f"Request inferred type is compatible with ['http'] but "
                                f"{self.json2.rule(method, path)!r} is type='/json/2/rpc'.")
        status, payload, extra = self.json2.handle(method, path, headers, body)
        if status != 200:
            log.info("event=json2_error status=%s name=%s", status, payload.get("name"))
        return _Reply(status, "application/json; charset=utf-8",
                      json.dumps(payload, ensure_ascii=False).encode(), extra)

    # -- JSON-RPC -------------------------------------------------------------
    def _json_route(self, path: str, content_type: str, body: bytes, endpoint: Callable[[dict], Any]) -> _Reply:
        mimetype = content_type.split(";", 1)[0].strip().lower()
        if mimetype not in JSON_TYPES:
            return _bad_request(f"Request inferred type is compatible with ['http'] but {path!r} is type='json'.")
        try:
            request = json.loads(body)
            request_id = request.get("id")
        except ValueError:
            return _Reply(400, "text/html; charset=utf-8", b"Invalid JSON data")
        except AttributeError:
            return _Reply(400, "text/html; charset=utf-8", b"Invalid JSON-RPC data")
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        headers: dict[str, str] = {}
        try:
            params = dict(request.get("params", {}))
            result = endpoint(params)
            if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
                result, headers = result
        except Exception as exc:  # noqa: BLE001 - every failure is a JSON-RPC error, as in Odoo
            log.info("event=rpc_error name=%s message=%r", type(exc).__name__, str(exc)[:200])
            reply["error"] = jsonrpc_error(exc)
            return _json(reply)
        if result is not None:
            reply["result"] = result
        return _json(reply, headers)

    def _session_authenticate(self, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        def authenticate(db: str, login: str, password: str, base_location: Any = None) -> Any:
            if db != self.service.db.name:
                raise AccessError("Database not found.")
            uid = self.service.authenticate(db, login, password)
            if not uid:
                raise AccessDenied()
            return self._session_info(uid)

        info = authenticate(**params)
        sid = secrets.token_urlsafe(54)
        return info, {"Set-Cookie": f"session_id={sid}; Expires=Sat, 01 Jan 2100 00:00:00 GMT; Max-Age=604800; "
                                    "HttpOnly; Path=/"}

    def _session_info(self, uid: int) -> dict[str, Any]:
        with self.service.lock:
            env = Environment(self.service.registry, self.service.db, uid).sudo()
            user = env["res.users"].browse(uid)
            name, login = user._get("name"), user._get("login")
            groups = env.user_group_names()
        is_admin = uid == ADMIN_UID or "Administration/Settings" in groups
        return {"uid": uid, "is_system": is_admin, "is_admin": is_admin, "is_public": False,
                "user_context": {"lang": "en_US", "tz": False, "uid": uid},
                "db": self.service.db.name, "registry_hash": "sandbox",
                "server_version": self.service.version.server_version,
                "server_version_info": self.service.version.version_info,
                "support_url": "https://www.odoo.com/buy", "name": name, "username": login,
                "partner_display_name": name, "partner_id": uid + 1, "company_id": 1,
                "web.base.url": "http://localhost:8069", "active_ids_limit": 20000,
                "profile_session": None, "profile_collectors": None, "profile_params": None,
                "max_file_upload_size": 134217728, "home_action_id": False,
                "user_companies": {"current_company": 1,
                                   "allowed_companies": {"1": {"id": 1, "name": "My Company", "sequence": 0,
                                                               "child_ids": [], "parent_id": False}},
                                   "disallowed_ancestor_companies": {}},
                "currencies": {"1": {"symbol": "€", "position": "after", "digits": [69, 2]}},
                "show_effect": True, "display_switch_company_menu": False,
                "cache_hashes": {}, "bundle_params": {"lang": "en_US"}, "test_mode": False}

    # -- XML-RPC ----------------------------------------------------------------
    def _xmlrpc(self, service: str, body: bytes,
                render_fault: Callable[[BaseException], xmlrpc.client.Fault]) -> _Reply:
        try:
            params, method = xmlrpc.client.loads(body)
            result = self.service.dispatch_rpc(service, method, params)
            payload = xmlrpc.client.dumps((result,), methodresponse=True, allow_none=False)
        except Exception as exc:  # noqa: BLE001 - every failure is a fault, as in Odoo
            log.info("event=rpc_fault name=%s message=%r", type(exc).__name__, str(exc)[:200])
            payload = xmlrpc.client.dumps(render_fault(exc), methodresponse=True, allow_none=False)
        return _Reply(200, "text/xml; charset=utf-8", payload.encode())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Werkzeug/2.0.2"
    sys_version = "Python/3.10.12"
    timeout = 60
    app: OdooApp  # set on the subclass built per sandbox
    faults: Faults  # idem

    def setup(self) -> None:
        super().setup()
        self.server.connections.add(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.connections.discard(self.connection)  # type: ignore[attr-defined]

    def _serve(self) -> None:
        length = self.headers.get("Content-Length")
        if length is None and self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._send(_Reply(411, "text/html; charset=utf-8", b"Length Required"))
            self.close_connection = True
            return
        body = self.rfile.read(int(length)) if length else b""
        if self.path.split("?", 1)[0] == "/sandbox/faults":
            self._send(self._fault_switch(body))
            return
        faults = self.faults.take()
        if faults.latency and self.faults.stopping.wait(faults.latency):
            return
        if faults.drop_connection:
            log.info("event=fault_injected kind=drop_connection path=%s", self.path)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if faults.http_status:
            log.info("event=fault_injected kind=http_status status=%s path=%s", faults.http_status, self.path)
            self._send(_Reply(faults.http_status, "text/html", proxy_error_page(faults.http_status),
                              {"Server": "nginx"}))
            return
        self.app.service.local.faults = faults
        try:
            reply = self.app.handle(self.command, self.path, self.headers.get("Content-Type", ""), body,
                                    self.headers)
        except Exception:  # noqa: BLE001 - a sandbox bug must still answer, as werkzeug does
            log.exception("event=internal_error path=%s", self.path)
            reply = _Reply(500, "text/html; charset=utf-8", b"Internal Server Error")
        finally:
            self.app.service.local.faults = None
        self._send(reply)

    def _fault_switch(self, body: bytes) -> _Reply:
        """``/sandbox/faults``: GET shows, POST replaces the faults; loopback clients only."""
        if not is_loopback(self.client_address[0]):
            return _not_found()
        if self.command == "POST":
            try:
                settings = json.loads(body or b"{}")
                if not isinstance(settings, dict):
                    raise ValueError("expecting a JSON object")
                state = self.faults.set(**settings)
            except ValueError as exc:
                return _Reply(400, "application/json", json.dumps({"error": str(exc)}).encode())
            log.info("event=faults_set faults=%s", json.dumps(state))
        elif self.command == "GET":
            state = self.faults.state()
        else:
            return _Reply(405, "text/html; charset=utf-8", b"Method Not Allowed")
        return _Reply(200, "application/json", json.dumps({"faults": state}).encode())

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        # headers and body leave in one write: two small segments would meet delayed ACKs on keep-alive
        self._headers_buffer.append(b"\r\n" + reply.body)  # type: ignore[attr-defined]
        self.flush_headers()

    do_POST = do_GET = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("event=http %s", format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.connections: set[socket.socket] = set()
        super().__init__(*args, **kw)


def is_loopback(address: str) -> bool:
    """Whether a client address is on this machine's loopback (the fault switch's only users)."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class OdooSandbox:
    """An Odoo double (16.0 to 19.0, 17.0 by default) on loopback: JSON-RPC, XML-RPC and, from 19,
    JSON-2; one database, optional persistence, run-time fault injection (``set_faults``) and optional
    modules (``modules=["quality_control_oca"]``: OCA's quality control, see ``models/qc.py``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, data_path: Path | str | None = None,
                 api_key: str = "admin", database: str = "sandbox",
                 version: OdooVersion | str | int = "17.0", modules: Iterable[str] = ()) -> None:
        self.host = host
        self._requested_port = port
        self.data_path = Path(data_path) if data_path else None
        self.database = database
        self.version = OdooVersion.parse(version)
        wanted = qc.requested(modules)  # optional modules (OCA quality control), installed on top of the demo
        self.db = Database(database)
        self.faults = Faults()
        saved = persist.load(self.data_path) if self.data_path else None
        if saved:
            self.db.load_dict(saved)
        self.modules = wanted | qc.installed_in(self.db)
        self.registry = build_registry(self.version, self.modules)
        env = Environment(self.registry, self.db, ADMIN_UID)
        if not saved:
            seed(env, self.version)
        installed_now = bool(self.modules) and qc.install(env)
        if not saved:
            self.db.version = 0
        self.service = OdooService(self.db, self.registry, api_key, on_commit=self._persist, version=self.version)
        if self.data_path and (not saved or installed_now):
            self._persist()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._requested_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Inject faults into the next requests (see ``faults.py``); no argument clears them.

        ``latency`` (s), ``http_status`` (e.g. 503), ``drop_connection``, ``serialization_failure``,
        ``pool_error``, ``connection_closed``, ``cursor_closed``, ``bad_key`` and ``count`` (the next N
        requests; default: until cleared).  Returns the state.
        """
        return self.faults.set(**faults)

    def add_api_key(self, key: str) -> None:
        """Give the admin user another API key (as a person does in Odoo before a rotation)."""
        with self.service.lock:
            self.service.api_keys = self.service.api_keys | {key}

    def revoke_api_key(self, key: str) -> None:
        """Remove one of the admin user's API keys: calls with it are refused from now on."""
        with self.service.lock:
            self.service.api_keys = self.service.api_keys - {key}

    def _persist(self) -> None:
        if self.data_path:
            persist.save(self.data_path, self.database, self.db.to_dict())

    def _bind(self) -> _Server:
        self.faults.stopping.clear()
        handler = type("OdooHandler", (_Handler,), {"app": OdooApp(self.service), "faults": self.faults})
        return _Server((self.host, self._requested_port), handler)

    def start(self) -> None:
        """Listen and serve in a background thread; returns once the socket is listening."""
        self._server = self._bind()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="odoo-sandbox", daemon=True)
        self._thread.start()
        log.info("event=sandbox_started kind=odoo url=%s database=%s version=%s", self.url, self.database,
                 self.version.server_version)

    def stop(self) -> None:
        """Stop serving, close open connections and persist."""
        server, self._server = self._server, None
        self.faults.stopping.set()
        if server is not None:
            host, port = server.server_address[:2]
            stopper = threading.Thread(target=server.shutdown)
            stopper.start()
            try:  # wake the accept loop now rather than at its next poll
                socket.create_connection((host, port), timeout=1).close()
            except OSError:
                pass
            stopper.join()
            server.server_close()
            for conn in list(server.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._requested_port = self._requested_port or port
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self.service.lock:
            self._persist()
        log.info("event=sandbox_stopped kind=odoo")

    def serve_forever(self) -> None:
        """Serve in the calling thread until KeyboardInterrupt or SIGTERM, then persist."""
        self._server = self._bind()
        previous = None
        if threading.current_thread() is threading.main_thread():
            def _term(signum: int, frame: Any) -> None:
                raise KeyboardInterrupt
            previous = signal.signal(signal.SIGTERM, _term)
        log.info("event=sandbox_started kind=odoo url=%s database=%s version=%s", self.url, self.database,
                 self.version.server_version)
        try:
            self._server.serve_forever(poll_interval=0.1)
        except KeyboardInterrupt:
            pass
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            server, self._server = self._server, None
            server.server_close()
            with self.service.lock:
                self._persist()
