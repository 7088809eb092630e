"""Who is asking and may they: sessions, CSRF, roles and the response headers of every answer.

Sessions live on the server (in memory, keyed by a random 256-bit id in a
Secure, HttpOnly, SameSite=Strict cookie), so logging out, removing a user or
changing a role takes effect at once; a session ends `session_minutes` after
its last request, and every session ends when the gateway restarts. Every
state-changing request (POST, PUT, PATCH, DELETE) must carry the session's
CSRF token in the `X-CSRF-Token` header or a `csrf_token` form field; before
login, the login and setup forms use a double-submit token (a cookie and the
same value in the form). Without a session only the login and setup pages and
static assets answer: pages redirect to the login, the API answers 401.
Viewers may read everything and change nothing.
"""
from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, Callable
from urllib.parse import urlsplit

from flask import Flask, Response, abort, g, jsonify, redirect, request, url_for

from webui.accounts import CAN_CHANGE

log = logging.getLogger("linebridge.webui")

SESSION_COOKIE = "lb_session"
PRE_CSRF_COOKIE = "lb_csrf"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
#: endpoints anyone may reach
PUBLIC = {"pages.login", "pages.setup", "static"}


@dataclass
class Session:
    user: str
    role: str
    seen: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.time)


class Sessions:
    """The sessions of one console; `clock` (monotonic seconds) is injectable for tests."""

    def __init__(self, idle_minutes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle = idle_minutes * 60.0
        self.clock = clock
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def new(self, user: str, role: str) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            for old in [k for k, s in self._by_id.items() if now - s.seen > self.idle]:
                del self._by_id[old]  # expired sessions nobody came back for
            self._by_id[sid] = s = Session(user, role, seen=now)
        return sid, s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        now = self.clock()
        with self._lock:
            s = self._by_id.get(sid)
            if s is None:
                return None
            if now - s.seen > self.idle:
                del self._by_id[sid]
                return None
            s.seen = now
            return s

    def end(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)

    def end_user(self, user: str) -> None:
        with self._lock:
            for sid in [k for k, s in self._by_id.items() if s.user == user]:
                del self._by_id[sid]

    def set_role(self, user: str, role: str) -> None:
        with self._lock:
            for s in self._by_id.values():
                if s.user == user:
                    s.role = role


def install(app: Flask, sessions: Sessions, secure_cookies: bool) -> None:
    """Hook session loading, the login wall, CSRF checks and security headers into `app`."""
    app.config["LB_SECURE"] = secure_cookies

    @app.before_request
    def _guard() -> Any:
        g.session = sessions.get(request.cookies.get(SESSION_COOKIE))
        g.sid = request.cookies.get(SESSION_COOKIE) if g.session else None
        endpoint = request.endpoint or ""
        if endpoint in PUBLIC:
            if request.method in UNSAFE and not _pre_csrf_ok():
                return _refuse(403, "the form's CSRF token is missing or wrong; reload the page")
            return None
        if endpoint == "api.metrics" and _metrics_token_ok(app):
            return None
        if g.session is None:
            if request.path.startswith("/api/") or endpoint == "api.metrics":
                return _refuse(401, "log in first")
            return redirect(url_for("pages.login", next=request.full_path.rstrip("?") if request.method == "GET" else None))
        if request.method in UNSAFE:
            token = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
            if not hmac.compare_digest(token.encode(), g.session.csrf.encode()):
                log.warning("event=webui_csrf_refused user=%s method=%s path=%s from=%s", g.session.user,
                            request.method, request.path, request.remote_addr)
                return _refuse(403, "CSRF token missing or wrong; reload the page")
        return None

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                                   "script-src 'self'; frame-ancestors 'none'; form-action 'self'; "
                                                   "base-uri 'none'")
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = resp.headers.get("Cache-Control", "no-store")
        if secure_cookies:
            resp.headers["Strict-Transport-Security"] = "max-age=31536000"
        return resp


def set_session_cookie(resp: Response, sid: str) -> None:
    from flask import current_app
    resp.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="Strict",
                    secure=current_app.config["LB_SECURE"], path="/")


def pre_csrf_token(resp_cookies: dict[str, str]) -> str:
    """The double-submit token for a login/setup form (reusing the browser's cookie if it has one)."""
    return request.cookies.get(PRE_CSRF_COOKIE) or resp_cookies.setdefault(PRE_CSRF_COOKIE, secrets.token_urlsafe(32))


def set_pre_csrf_cookie(resp: Response, token: str) -> None:
    from flask import current_app
    resp.set_cookie(PRE_CSRF_COOKIE, token, httponly=True, samesite="Strict",
                    secure=current_app.config["LB_SECURE"], path="/")


def _pre_csrf_ok() -> bool:
    cookie = request.cookies.get(PRE_CSRF_COOKIE) or ""
    given = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    return bool(cookie) and hmac.compare_digest(cookie.encode(), given.encode())


def _metrics_token_ok(app: Flask) -> bool:
    token = app.config.get("LB_METRICS_TOKEN")
    auth = request.headers.get("Authorization", "")
    return bool(token) and auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].encode(), token.encode())


def _refuse(status: int, message: str) -> Response:
    if request.path.startswith("/api/"):
        resp = jsonify({"error": message})
    else:
        resp = Response(f"{status}: {message}\n", mimetype="text/plain")
    resp.status_code = status
    return resp


def may(what: str) -> bool:
    s = g.get("session")
    return s is not None and what in CAN_CHANGE.get(s.role, set())


def requires(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Refuse (403) unless the session's role may change `what` (config, queue or users)."""
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            if not may(what):
                role = g.session.role if g.get("session") else "nobody"
                log.warning("event=webui_change_refused user=%s role=%s path=%s needs=%s", who(), role,
                            request.path, what)
                if request.path.startswith("/api/"):
                    resp = jsonify({"error": f"a {role} may not change {what}"})
                    resp.status_code = 403
                    return resp
                abort(403)
            return fn(*args, **kwargs)
        return inner
    return deco


def local_target(target: str | None, default: str) -> str:
    """`target` if it is a path on this console, else `default` (no open redirect after login).

    Browsers read `/\\host` and `/<tab>/host` as `//host`, another site, so a
    backslash or a control character anywhere refuses the target too.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def who() -> str:
    s = g.get("session")
    return s.user if s else "anonymous"
