"""The console's HTML pages: setup, login, logout and one page per job.

Setup and login are plain forms (they work before any script runs). The other
pages are server-rendered shells whose data comes from `/api/v1` through the
small script in `static/app.js`, so what a person sees is what the API says.
The API reference page renders `webui.openapi`'s document on the server
(`webui.apiref`). This module owns the routes, the first-admin flow and the login throttle's
place in it (per address and per account, every refusal logged, no password); the rules about sessions and CSRF live in `webui.security`.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, g, make_response, redirect, render_template, request, url_for

from webui import openapi
from webui.accounts import AccountError
from webui.apiref import operations
from webui.app import console
from webui.security import (PRE_CSRF_COOKIE, SESSION_COOKIE, local_target, pre_csrf_token,
                            set_pre_csrf_cookie, set_session_cookie)

pages = Blueprint("pages", __name__)
log = logging.getLogger("linebridge.webui")

#: (endpoint, title) of the navigation, in order
NAV = [("overview", "Overview"), ("oee", "OEE"), ("devices", "Devices"), ("mappings", "Rules & mappings"),
       ("connections", "Connections"), ("queue", "Queue"), ("labels", "Labels"), ("history", "Config history"),
       ("logs", "Logs"), ("users", "Users"), ("identity", "Identity"),
       ("system", "System")]


def _form_page(template: str, status: int = 200, **ctx: Any) -> Response:
    new: dict[str, str] = {}
    token = pre_csrf_token(new)
    resp = make_response(render_template(template, csrf_token=token, identity=console().identity(), **ctx), status)
    if PRE_CSRF_COOKIE in new:
        set_pre_csrf_cookie(resp, token)
    return resp


def _client() -> str:
    return request.remote_addr or "?"


def _logged_name(name: str) -> str:
    """A user name fit for the log: an account's name, never what someone typed that is none
    (a password typed into the name field must not reach the log)."""
    return name if name and console().accounts.get(name) is not None else "(not a user)"


@pages.route("/setup", methods=["GET", "POST"])
def setup() -> Response:
    c = console()
    if not c.accounts.needs_setup():
        return redirect(url_for("pages.login"))
    error = None
    if request.method == "POST":
        keys = [f"address:{_client()}"]
        wait = c.throttle.begin(keys)
        if wait:
            log.warning("event=webui_setup_throttled from=%s wait_s=%.0f", _client(), wait)
            return _form_page("setup.html", 429, error=f"too many attempts; wait {wait:.0f} s")
        name = request.form.get("name", "").strip() or "admin"
        password = request.form.get("password", "")
        code_wrong, done = False, False
        try:
            if password != request.form.get("password2", ""):
                error = "the two passwords differ"
            else:
                try:
                    c.accounts.create_first_admin(request.form.get("code", ""), name, password)
                except AccountError as exc:
                    error = str(exc)
                    code_wrong = "setup code" in error
                else:
                    done = True
                    log.info("event=webui_setup_done admin=%s from=%s", name, _client())
                    return redirect(url_for("pages.login", done=1))
        finally:
            c.throttle.end(keys, ok=True if done else (False if code_wrong else None))
        if code_wrong:
            log.warning("event=webui_setup_code_wrong from=%s", _client())
        return _form_page("setup.html", 422, error=error, name=name)
    return _form_page("setup.html")


@pages.route("/login", methods=["GET", "POST"])
def login() -> Response:
    c = console()
    if c.accounts.needs_setup():
        return redirect(url_for("pages.setup"))
    if request.method == "POST":
        address = _client()
        name = request.form.get("name", "")
        # per address and per account, reserved before the check: parallel tries cannot outrun the limit
        keys = [f"address:{address}", f"account:{name}"]
        wait = c.throttle.begin(keys)
        if wait:
            log.warning("event=webui_login_throttled user=%s from=%s wait_s=%.0f", _logged_name(name), address, wait)
            return _form_page("login.html", 429, error=f"too many failed logins for this account or from {address}; "
                                                      f"try again in {wait:.0f} s")
        user = None
        try:
            user = c.accounts.authenticate(name, request.form.get("password", ""))
        finally:
            c.throttle.end(keys, ok=user is not None)
        if user is None:
            log.warning("event=webui_login_failed user=%s from=%s", _logged_name(name), address)
            return _form_page("login.html", 401, error="wrong user name or password", name=name)
        c.sessions.end(request.cookies.get(SESSION_COOKIE))  # a fresh id at every login
        sid, _ = c.sessions.new(user.name, user.role)
        log.info("event=webui_login user=%s role=%s from=%s", user.name, user.role, address)
        resp = redirect(local_target(request.args.get("next"), url_for("pages.overview")))
        set_session_cookie(resp, sid)
        return resp
    return _form_page("login.html", done=request.args.get("done"))


@pages.post("/logout")
def logout() -> Response:
    console().sessions.end(g.sid)
    resp = redirect(url_for("pages.login"))
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@pages.get("/")
def index() -> Response:
    return redirect(url_for("pages.overview"))


def _page(name: str, title: str) -> None:
    def view() -> str:
        s = g.session
        return render_template(f"{name}.html", title=title, nav=NAV, active=name, user=s.user, role=s.role,
                               csrf_token=s.csrf, identity=console().identity())
    view.__name__ = name
    pages.add_url_rule(f"/{name}", name, view, methods=["GET"])


for _name, _title in NAV:
    _page(_name, _title)


@pages.get("/api-reference")
def api_reference() -> str:
    """The API's description as a page (linked from Identity and System, not in the navigation)."""
    s, doc = g.session, openapi.document()
    return render_template("apiref.html", title="API reference", nav=NAV, active="api-reference", user=s.user,
                           role=s.role, csrf_token=s.csrf, identity=console().identity(), ops=operations(doc),
                           info=doc["info"], openapi_version=doc["openapi"])
