"""Every route of the console behind its rules, against a running gateway.

The routes come from the Flask app's own url_map, so a route added tomorrow is
walked too: without a session only the login and setup pages and static assets
answer; every change needs the session's CSRF token; a viewer changes nothing;
a technician changes configuration and queue but not users. Then the login
throttle, the one-time setup code, cookies, headers, session expiry and ending.
"""
from __future__ import annotations

import itertools
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.helpers import wait_for
from tests.webui.conftest import ADMIN_PASSWORD, Console, Gateway, admin_console, start_gateway
from webui import security
from webui.accounts import Accounts, Throttle
from webui.app import Console as AppConsole
from webui.app import create_app
from webui.configfile import ConfigFile
from webui.logbuffer import LogBuffer

#: endpoints anyone may reach, as this test (not the code under test) says
PUBLIC = {"pages.login", "pages.setup", "static"}
#: changes any logged-in user may make to their own session or account
SELF_SERVICE = {"pages.logout", "api.change_own_password"}
#: reads only an admin may make: the fleet on the broker, where the credentials are kept
ADMIN_READS = {"fleet.page", "fleet.fleet", "fleet.credentials"}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
PARAM = re.compile(r"<(?:(?P<conv>\w+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>")


# -- the app's routes ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    rule: str                 # as Flask spells it: /api/v1/<any(a, b):what>/<name>
    endpoint: str
    methods: frozenset[str]   # without HEAD and OPTIONS, which Flask adds itself


def app_routes() -> list[Route]:
    """Every rule of the console's Flask app (built in this process; nothing is served)."""
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        console = AppConsole(bridge=None, accounts=Accounts(state), throttle=Throttle(5, 300),  # type: ignore[arg-type]
                             sessions=security.Sessions(60), config_file=ConfigFile(state / "lb.toml", state),
                             logs=LogBuffer(), state_dir=state, tls_fingerprint=None, metrics_token="unused")
        app = create_app(console)
        routes = [Route(r.rule, r.endpoint, frozenset(r.methods - {"HEAD", "OPTIONS"}))
                  for r in app.url_map.iter_rules()]
    assert len(routes) > 30, routes
    return routes


def expand_any(rule: str) -> list[str]:
    """`rule` once per value of each any(...) converter (every combination)."""
    m = re.search(r"<any\(([^)]*)\):\w+>", rule)
    if not m:
        return [rule]
    return [x for value in m.group(1).split(",")
            for x in expand_any(rule[:m.start()] + value.strip() + rule[m.end():])]


#: a real name for a `<name>` argument, by what precedes it, so a request that got through would change something
NAMES = {"/api/v1/devices/": "cnc01", "/api/v1/machines/": "CNC-01", "/api/v1/rules/": "cnc01_parts",
         "/api/v1/connections/": "odoo"}


def concrete(rule: str, user: str = "nobody") -> list[str]:
    """Real paths for `rule`: any() expanded, every other argument given a sample value."""
    out = []
    for path in expand_any(rule):
        def value(m: re.Match[str], path: str = path) -> str:
            conv, name, head = m["conv"], m["name"], path[:m.start()]
            if conv == "int":
                return "0"
            if conv == "path" and head == "/static/":
                return "app.css"
            if name == "sink":
                return "odoo"
            if name == "tag":
                return "parts"
            if name == "label_id":
                return "lbl_000000000000000000000000"
            if name == "template":
                return "carton"
            if name == "name" and head == "/api/v1/users/":
                return user
            if name == "name" and head in NAMES:
                return NAMES[head]
            raise AssertionError(f"no sample value for <{m[0]}> in {rule}: add one to tests/webui/test_security.py")
        out.append(PARAM.sub(value, path))
    return out


def requests_of(routes: list[Route], user: str = "nobody") -> Iterator[tuple[Route, str, str]]:
    for route in routes:
        for method, path in itertools.product(sorted(route.methods), concrete(route.rule, user)):
            yield route, method, path


# -- helpers ------------------------------------------------------------------------------------

class ConsoleFrom(Console):
    """A console client whose connections come from another loopback address (its own throttle bucket)."""

    def __init__(self, gw: Gateway, address: str) -> None:
        super().__init__(gw)
        self.http.close()
        self.http = httpx.Client(base_url=gw.base_url, timeout=60.0, follow_redirects=False,
                                 transport=httpx.HTTPTransport(verify=False, local_address=address))


def login_as(gw: Gateway, name: str, password: str) -> Console:
    c = Console(gw)
    resp = c.login(name, password)
    assert resp.status_code == 302 and c.csrf, (resp.status_code, resp.text[:300])
    return c


def add_user(admin: Console, name: str, role: str, password: str = "a long enough password") -> Console:
    resp = admin.api("POST", "/users", {"name": name, "role": role, "password": password})
    assert resp.status_code == 200, resp.text
    return login_as(admin.gw, name, password)


def state_of(gw: Gateway) -> dict[str, Any]:
    webui = gw.state_dir / "webui"
    return {"config": gw.config_path.read_bytes(), "users": (webui / "users.json").read_bytes(),
            "history": sorted(p.name for p in (webui / "history").iterdir())}


def body_for(route: Route, path: str, admin: Console) -> dict[str, Any]:
    """A body that would really change something if the request got through."""
    ep = route.endpoint
    if ep in ("api.add_section", "api.put_section"):
        what = path.split("/")[3]
        section = admin.api("GET", f"/{what}/{NAMES['/api/v1/' + what + '/']}").json()["section"]
        if what == "devices":
            section = dict(section, poll_interval=0.75)
        return {"name": f"{what}-new", "section": section}
    if ep == "api.put_shifts":
        return {"shifts": None}
    if ep == "api.config_replace":
        return {"text": admin.gw.config_path.read_text().replace('site = "demo"', 'site = "pwned"')}
    if ep in ("api.add_user", "api.update_user"):
        return {"name": "mallory", "role": "admin", "password": "mallory's password"}
    if ep == "api.change_own_password":
        return {"current": ADMIN_PASSWORD, "password": "a password nobody knows"}
    return {}


def send(http: httpx.Client, method: str, path: str, body: dict[str, Any], token: str | None) -> httpx.Response:
    headers = {"X-CSRF-Token": token} if token is not None else {}
    if path.startswith("/api/"):
        return http.request(method, path, json=body, headers=headers)
    return http.request(method, path, data=body, headers=headers)


def is_login_redirect(resp: httpx.Response) -> bool:
    return resp.status_code == 302 and resp.headers.get("location", "").startswith("/login")


def console_ready(gw: Gateway) -> Gateway:
    """Wait until the console has written its setup code (or has users): its port opens a moment before."""
    webui = gw.state_dir / "webui"
    wait_for(lambda: (webui / "setup-code").exists() or (webui / "users.json").exists(), 10, "the setup code")
    return gw


@pytest.fixture(scope="module")
def admin(gateway: Gateway) -> Iterator[Console]:
    c = admin_console(console_ready(gateway))
    yield c
    c.close()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Gateway]:
    """A gateway of its own (its own users, setup code and login throttle)."""
    for gw in start_gateway(tmp_path):
        yield console_ready(gw)


# -- without a session --------------------------------------------------------------------------

def test_the_public_endpoints_are_only_login_setup_and_static() -> None:
    assert security.PUBLIC == PUBLIC
    endpoints = {r.endpoint for r in app_routes()}
    assert PUBLIC <= endpoints


def test_without_a_session_only_login_setup_and_static_answer(gateway: Gateway, admin: Console) -> None:
    failures = []
    for cookies in ({}, {security.SESSION_COOKIE: "forged-or-expired-session-id"}):
        anon = httpx.Client(base_url=gateway.base_url, verify=False, timeout=60.0, cookies=cookies)
        for route, method, path in requests_of(app_routes(), user="admin"):
            resp = send(anon, method, path, {}, None)
            if route.endpoint in PUBLIC:
                ok = (resp.status_code == 403 if method in UNSAFE
                      else resp.status_code == 200 or (resp.status_code == 302 and
                                                        resp.headers["location"].startswith(("/login", "/setup"))))
            elif path.startswith("/api/"):
                ok = resp.status_code == 401 and "error" in resp.json()
            elif path == "/metrics":
                ok = resp.status_code == 401
            else:
                ok = is_login_redirect(resp)
            if not ok:
                failures.append(f"{method} {path} ({route.endpoint}) without a session: {resp.status_code} "
                                f"{resp.headers.get('location', '')} {resp.text[:120]!r}")
        anon.close()
    assert not failures, "\n".join(failures)


def test_a_page_sends_the_visitor_to_the_login_and_back(gateway: Gateway, admin: Console) -> None:
    anon = Console(gateway)
    resp = anon.http.get("/queue")
    assert resp.status_code == 302 and resp.headers["location"] == "/login?next=/queue"
    token = anon.form_token("/login?next=/queue")
    resp = anon.http.post("/login?next=/queue", data={"csrf_token": token, "name": "admin",
                                                      "password": ADMIN_PASSWORD})
    assert resp.status_code == 302 and resp.headers["location"] == "/queue"


def test_metrics_answer_a_session_or_the_bearer_token_only(gateway: Gateway, admin: Console) -> None:
    token = (gateway.state_dir / "webui" / "metrics-token").read_text().strip()
    anon = httpx.Client(base_url=gateway.base_url, verify=False, timeout=60.0)
    assert anon.get("/metrics").status_code == 401
    assert anon.get("/metrics", headers={"Authorization": "Bearer " + token[:-1] + "x"}).status_code == 401
    assert anon.get("/metrics", headers={"Authorization": token}).status_code == 401
    resp = anon.get("/metrics", headers={"Authorization": "Bearer " + token})
    assert resp.status_code == 200 and "linebridge_queue_depth" in resp.text
    # the token opens /metrics and nothing else
    assert anon.get("/api/v1/status", headers={"Authorization": "Bearer " + token}).status_code == 401
    assert admin.http.get("/metrics").status_code == 200
    anon.close()


# -- CSRF ---------------------------------------------------------------------------------------

def test_every_change_without_the_csrf_token_is_refused_and_changes_nothing(gateway: Gateway,
                                                                           admin: Console) -> None:
    other = login_as(gateway, "admin", ADMIN_PASSWORD)  # a second session: its token is not this one's
    assert other.csrf != admin.csrf
    add_user(admin, "csrf-target", "viewer").close()
    before = state_of(gateway)
    failures = []
    changes = [(route, method, path, body_for(route, path, admin))
               for route, method, path in requests_of(app_routes(), user="csrf-target") if method in UNSAFE]
    changes.sort(key=lambda c: c[0].endpoint == "pages.logout")  # a logout that got through ends the walk's session
    for route, method, path, body in changes:
        for token in (None, "", "wrong-" + (admin.csrf or ""), other.csrf):
            resp = send(admin.http, method, path, body, token)
            if resp.status_code != 403:
                failures.append(f"{method} {path} with CSRF token {token!r}: {resp.status_code} {resp.text[:120]!r}")
    assert not failures, "\n".join(failures)
    assert state_of(gateway) == before, "a refused request changed the configuration, history or users"
    assert admin.api("GET", "/me").status_code == 200, "a logout without the token does not log out"
    assert login_as(gateway, "admin", ADMIN_PASSWORD), "the admin's password is unchanged"
    other.close()


def test_the_login_and_setup_forms_need_the_double_submit_token(gateway: Gateway, admin: Console) -> None:
    good = {"name": "admin", "password": ADMIN_PASSWORD}
    c = Console(gateway)
    token = c.form_token("/login")                      # the cookie is now set in c
    assert c.http.cookies.get(security.PRE_CSRF_COOKIE) == token
    attempts = {
        "no token, no cookie": (httpx.Client(base_url=gateway.base_url, verify=False), dict(good)),
        "cookie, no token": (c.http, dict(good)),
        "cookie, wrong token": (c.http, dict(good, csrf_token=token[:-2] + "xx")),
        "token, no cookie": (httpx.Client(base_url=gateway.base_url, verify=False), dict(good, csrf_token=token)),
    }
    for what, (http, form) in attempts.items():
        for path in ("/login", "/setup"):
            resp = http.post(path, data=form)
            assert resp.status_code == 403, f"{path} with {what}: {resp.status_code}"
            assert security.SESSION_COOKIE not in resp.cookies, f"{path} with {what} logged in"
    resp = c.http.post("/login", data=dict(good, csrf_token=token))
    assert resp.status_code == 302 and resp.cookies.get(security.SESSION_COOKIE)


# -- roles --------------------------------------------------------------------------------------

def test_a_viewer_reads_everything_but_the_admin_reads_and_changes_nothing(gateway: Gateway, admin: Console) -> None:
    viewer = add_user(admin, "vera", "viewer")
    add_user(admin, "viewer-target", "technician").close()
    before = state_of(gateway)
    failures = []
    walk = [(route, method, path, body_for(route, path, admin) if method in UNSAFE else {})
            for route, method, path in requests_of(app_routes(), user="viewer-target")
            if route.endpoint not in PUBLIC | SELF_SERVICE]
    for route, method, path, body in walk:
        if method in UNSAFE:
            resp = send(viewer.http, method, path, body, viewer.csrf)
            if resp.status_code != 403 or (path.startswith("/api/") and "viewer" not in resp.json()["error"]):
                failures.append(f"viewer {method} {path}: {resp.status_code} {resp.text[:120]!r}")
        elif route.endpoint in ADMIN_READS:
            resp = viewer.http.get(path)
            if resp.status_code != 403:
                failures.append(f"viewer GET {path} (admin only): {resp.status_code} {resp.text[:120]!r}")
        else:
            resp = viewer.http.get(path)
            has_args = "<" in route.rule and "<any" not in route.rule
            ok = (resp.status_code == 200 or (has_args and resp.status_code in (404, 422))
                  or (resp.status_code == 302 and not is_login_redirect(resp)))
            if not ok:
                failures.append(f"viewer GET {path}: {resp.status_code} {resp.text[:120]!r}")
    assert not failures, "\n".join(failures)
    assert state_of(gateway) == before
    viewer.close()


def test_a_viewer_may_change_their_own_password(gateway: Gateway, admin: Console) -> None:
    viewer = add_user(admin, "val", "viewer", "the first password")
    wrong = viewer.api("POST", "/me/password", {"current": "not it at all", "password": "the second password"})
    assert wrong.status_code == 403
    resp = viewer.api("POST", "/me/password", {"current": "the first password", "password": "the second password"})
    assert resp.status_code == 200, resp.text
    login_as(gateway, "val", "the second password").close()


def test_a_technician_changes_the_queue_but_not_users(gateway: Gateway, admin: Console) -> None:
    tech = add_user(admin, "tom", "technician")
    users_before = state_of(gateway)["users"]
    assert tech.api("POST", "/users", {"name": "eve", "role": "admin", "password": "eve's long password"}
                    ).status_code == 403
    assert tech.api("PUT", "/users/tom", {"role": "admin"}).status_code == 403
    assert tech.api("PUT", "/users/admin", {"password": "taken over admin"}).status_code == 403
    assert tech.api("DELETE", "/users/admin").status_code == 403
    assert state_of(gateway)["users"] == users_before
    assert tech.api("GET", "/users").status_code == 200
    resp = tech.api("POST", "/dead-letters/odoo/replay", {})
    assert resp.status_code == 200 and resp.json() == {"replayed": 0}
    # the role lets the change through to validation (which refuses it, naming the key)
    dev = tech.api("GET", "/devices/cnc01").json()
    bad = tech.api("PUT", "/devices/cnc01", {"section": dict(dev["section"], port=70000)})
    assert bad.status_code == 422 and any("devices.cnc01.port" in p for p in bad.json()["problems"])
    tech.close()


def test_a_technician_changes_the_configuration(gateway: Gateway, admin: Console) -> None:
    tech = add_user(admin, "tess", "technician")
    dev = tech.api("GET", "/devices/cnc01").json()
    resp = tech.api("PUT", "/devices/cnc01", {"section": dict(dev["section"], poll_interval=0.4),
                                              "version": dev["version"]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["saved"]["who"] == "tess"
    assert "poll_interval = 0.4" in gateway.config_path.read_text()
    tech.close()


def test_a_role_change_takes_effect_at_once(gateway: Gateway, admin: Console) -> None:
    user = add_user(admin, "rita", "technician")
    assert user.api("POST", "/dead-letters/odoo/discard", {"seqs": []}).status_code == 200
    assert admin.api("PUT", "/users/rita", {"role": "viewer"}).status_code == 200
    assert user.api("GET", "/me").json()["role"] == "viewer"
    assert user.api("POST", "/dead-letters/odoo/discard", {"seqs": []}).status_code == 403
    user.close()


# -- sessions -----------------------------------------------------------------------------------

def test_logout_ends_the_session_on_the_server(gateway: Gateway, admin: Console) -> None:
    c = login_as(gateway, "admin", ADMIN_PASSWORD)
    sid = c.http.cookies[security.SESSION_COOKIE]
    resp = c.http.post("/logout", data={"csrf_token": c.csrf})
    assert is_login_redirect(resp)
    replay = httpx.Client(base_url=gateway.base_url, verify=False, cookies={security.SESSION_COOKIE: sid})
    assert replay.get("/api/v1/me").status_code == 401, "the old cookie still works after logout"
    assert is_login_redirect(replay.get("/overview"))
    replay.close()


def test_a_new_login_gets_a_new_session_id(gateway: Gateway, admin: Console) -> None:
    c = login_as(gateway, "admin", ADMIN_PASSWORD)
    first = c.http.cookies[security.SESSION_COOKIE]
    assert c.login().status_code == 302
    second = c.http.cookies[security.SESSION_COOKIE]
    assert second != first
    stale = httpx.Client(base_url=gateway.base_url, verify=False, cookies={security.SESSION_COOKIE: first})
    assert stale.get("/api/v1/me").status_code == 401, "logging in again ends the session it replaced"
    stale.close()


def test_removing_a_user_ends_their_sessions(gateway: Gateway, admin: Console) -> None:
    user = add_user(admin, "gone", "technician")
    assert user.api("GET", "/me").status_code == 200
    assert admin.api("DELETE", "/users/gone").json() == {"removed": "gone"}
    assert user.api("GET", "/me").status_code == 401
    assert is_login_redirect(user.http.get("/overview"))
    # nor can they log in again (from an address of its own: this failure counts against it)
    again = ConsoleFrom(gateway, "127.0.0.3")
    assert again.login("gone", "a long enough password").status_code == 401
    again.close()


def test_a_password_reset_by_an_admin_ends_the_users_sessions(gateway: Gateway, admin: Console) -> None:
    user = add_user(admin, "pat", "viewer")
    assert admin.api("PUT", "/users/pat", {"password": "reset by the admin"}).status_code == 200
    assert user.api("GET", "/me").status_code == 401
    login_as(gateway, "pat", "reset by the admin").close()


def test_an_admin_cannot_remove_themself_nor_the_last_admin(gateway: Gateway, admin: Console) -> None:
    resp = admin.api("DELETE", "/users/admin")
    assert resp.status_code == 422
    assert admin.api("PUT", "/users/admin", {"role": "viewer"}).status_code == 422
    assert admin.api("GET", "/me").json()["role"] == "admin"


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_expires_after_its_idle_time() -> None:
    clock = FakeClock()
    sessions = security.Sessions(idle_minutes=10, clock=clock)
    sid, s = sessions.new("ann", "viewer")
    clock.now += 599
    assert sessions.get(sid) is s, "inside the idle time"
    clock.now += 599
    assert sessions.get(sid) is s, "each request starts the idle time again"
    clock.now += 601
    assert sessions.get(sid) is None
    assert sessions.get(sid) is None, "an expired session stays ended"
    assert sessions.get(None) is None and sessions.get("") is None and sessions.get("made-up") is None


def test_sessions_end_by_id_by_user_and_expired_ones_are_dropped() -> None:
    clock = FakeClock()
    sessions = security.Sessions(idle_minutes=1, clock=clock)
    a1, _ = sessions.new("ann", "viewer")
    a2, _ = sessions.new("ann", "viewer")
    b, _ = sessions.new("bob", "technician")
    sessions.set_role("ann", "admin")
    assert sessions.get(a1).role == sessions.get(a2).role == "admin"
    sessions.end(a1)
    assert sessions.get(a1) is None and sessions.get(a2) is not None
    sessions.end_user("ann")
    assert sessions.get(a2) is None and sessions.get(b) is not None
    clock.now += 61
    sessions.new("carl", "viewer")
    assert b not in sessions._by_id, "a new login drops sessions nobody came back for"


# -- login throttling and the setup code --------------------------------------------------------

def test_five_wrong_passwords_then_even_the_right_one_is_refused(fresh: Gateway) -> None:
    admin = admin_console(fresh)
    add_user(admin, "other", "viewer", "other's long password").close()
    admin.close()
    c = Console(fresh)
    for _ in range(5):
        assert c.login("admin", "not the password").status_code == 401
    resp = c.login("admin", ADMIN_PASSWORD)
    assert resp.status_code == 429, resp.text[:300]
    assert "too many failed logins" in resp.text
    assert security.SESSION_COOKIE not in resp.cookies
    assert "event=webui_login_throttled user=admin from=127.0.0.1" in fresh.log()
    # the account waits from every address ...
    elsewhere = ConsoleFrom(fresh, "127.0.0.2")
    assert elsewhere.login("admin", ADMIN_PASSWORD).status_code == 429
    # ... and the address for every account; another account from another address is not throttled
    assert c.login("other", "other's long password").status_code == 429
    assert elsewhere.login("other", "other's long password").status_code == 302
    # unknown user names count against the address too, and are not logged as typed
    third = ConsoleFrom(fresh, "127.0.0.3")
    for i in range(5):
        assert third.login(f"nosuchuser{i}", "not the password").status_code == 401
    assert third.login("other", "other's long password").status_code == 429
    assert "nosuchuser" not in fresh.log() and "not the password" not in fresh.log()


def test_the_setup_code_works_once_and_setup_then_redirects(fresh: Gateway) -> None:
    code = fresh.setup_code()
    c = Console(fresh)
    assert c.http.get("/login").headers["location"] == "/setup", "no login before the first admin exists"
    assert c.http.get("/api/v1/users").status_code == 401
    token = c.form_token("/setup")
    form = {"csrf_token": token, "name": "first", "password": ADMIN_PASSWORD, "password2": ADMIN_PASSWORD}
    wrong = c.http.post("/setup", data=dict(form, code="0000-0000-0000"))
    assert wrong.status_code == 422 and "setup code is not right" in wrong.text
    assert fresh.setup_code() == code
    done = c.http.post("/setup", data=dict(form, code=code))
    assert done.status_code == 302 and done.headers["location"] == "/login?done=1"
    assert not (fresh.state_dir / "webui" / "setup-code").exists()
    assert c.http.get("/setup").headers["location"] == "/login"
    again = c.http.post("/setup", data=dict(form, code=code, name="second"))
    assert again.status_code == 302 and again.headers["location"] == "/login"
    users = (fresh.state_dir / "webui" / "users.json").read_text()
    assert '"first"' in users and '"second"' not in users
    assert login_as(fresh, "first", ADMIN_PASSWORD).api("GET", "/me").json()["role"] == "admin"


def test_wrong_setup_codes_are_counted(fresh: Gateway) -> None:
    code = fresh.setup_code()
    c = Console(fresh)
    token = c.form_token("/setup")
    form = {"csrf_token": token, "name": "admin", "password": ADMIN_PASSWORD, "password2": ADMIN_PASSWORD}
    for i in range(5):
        assert c.http.post("/setup", data=dict(form, code=f"BAD0-0000-000{i}")).status_code == 422
    resp = c.http.post("/setup", data=dict(form, code=code))
    assert resp.status_code == 429, "past the limit even the right code waits"
    assert fresh.setup_code() == code
    assert ConsoleFrom(fresh, "127.0.0.2").setup().status_code == 302


# -- cookies, headers, redirects ----------------------------------------------------------------

def _cookie_attributes(resp: httpx.Response, name: str) -> set[str]:
    for header in resp.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            return {part.strip().lower() for part in header.split(";")[1:]}
    raise AssertionError(f"no {name} cookie set: {resp.headers.get_list('set-cookie')}")


def test_cookies_are_secure_httponly_and_samesite_strict(gateway: Gateway, admin: Console) -> None:
    c = Console(gateway)
    page = c.http.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    resp = c.http.post("/login", data={"csrf_token": token, "name": "admin", "password": ADMIN_PASSWORD})
    for r, name in ((page, security.PRE_CSRF_COOKIE), (resp, security.SESSION_COOKIE)):
        attrs = _cookie_attributes(r, name)
        assert {"secure", "httponly", "samesite=strict", "path=/"} <= attrs, (name, attrs)


def test_security_headers_are_on_every_answer(gateway: Gateway, admin: Console) -> None:
    anon = httpx.Client(base_url=gateway.base_url, verify=False)
    answers = {"login page": anon.get("/login"), "redirect": anon.get("/overview"),
               "401": anon.get("/api/v1/status"), "static": anon.get("/static/app.css"),
               "api": admin.api("GET", "/status"), "page": admin.http.get("/devices"),
               "403": admin.http.post("/api/v1/users", json={})}
    for what, resp in answers.items():
        h = resp.headers
        csp = h.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, what
        assert "unsafe-inline" not in csp, what
        assert h.get("x-frame-options") == "DENY", what
        assert h.get("x-content-type-options") == "nosniff", what
        assert h.get("strict-transport-security", "").startswith("max-age="), what
        assert int(h["strict-transport-security"].split("=")[1].split(";")[0]) >= 15552000, what
    assert answers["api"].headers["cache-control"] == "no-store"
    anon.close()


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example/",
                                    "/\t/evil.example/", "\\\\evil.example", "javascript:alert(1)", "overview"])
def test_next_cannot_send_the_person_to_another_site(gateway: Gateway, admin: Console, target: str) -> None:
    c = Console(gateway)
    token = c.form_token("/login")
    resp = c.http.post("/login", params={"next": target},
                       data={"csrf_token": token, "name": "admin", "password": ADMIN_PASSWORD})
    assert resp.status_code == 302
    assert resp.headers["location"] == "/overview", f"next={target!r} sent the browser to {resp.headers['location']}"


def test_next_may_name_a_page_of_the_console(gateway: Gateway, admin: Console) -> None:
    c = Console(gateway)
    token = c.form_token("/login")
    resp = c.http.post("/login", params={"next": "/logs?level=ERROR"},
                       data={"csrf_token": token, "name": "admin", "password": ADMIN_PASSWORD})
    assert resp.headers["location"] == "/logs?level=ERROR"


def test_unknown_api_paths_and_methods_answer_json_and_pages_plain(gateway: Gateway, admin: Console) -> None:
    missing = admin.api("GET", "/no-such-thing")
    assert missing.status_code == 404 and "error" in missing.json()
    wrong = admin.api("DELETE", "/status")
    assert wrong.status_code == 405 and "error" in wrong.json()
    page = admin.http.get("/no-such-page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    anon = httpx.Client(base_url=gateway.base_url, verify=False)
    assert anon.get("/api/v1/no-such-thing").status_code == 401, "no session: nothing to learn about routes"
    assert is_login_redirect(anon.get("/no-such-page"))
    anon.close()


# -- the walker itself --------------------------------------------------------------------------

def test_the_walker_sees_every_kind_of_route() -> None:
    paths = {p for r in app_routes() for p in concrete(r.rule, user="u")}
    assert {"/api/v1/devices/cnc01", "/api/v1/connections/odoo", "/api/v1/dead-letters/odoo/replay",
            "/api/v1/dead-letters/odoo/discard", "/api/v1/config/history/0/rollback", "/static/app.css",
            "/api/v1/users/u", "/metrics", "/logout"} <= paths
    with pytest.raises(AssertionError, match="no sample value"):
        concrete("/api/v1/widgets/<name>")
    assert expand_any("/a/<any(x, y):k>/<any(p, q):o>") == ["/a/x/p", "/a/x/q", "/a/y/p", "/a/y/q"]
