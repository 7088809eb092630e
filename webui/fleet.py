"""The console's admin page "Fleet & keys": the fleet seen on the broker, Odoo key rotation, certificates.

It owns three admin-only routes and the page that shows them. `GET
/api/v1/fleet` answers the fleet (`gateway.fleet`) as a monitor subscribed
with the heartbeat's MQTT connection settings sees it (one connection per
console, made at the first request and kept; bounded like the command's).
`GET /api/v1/credentials` says, per Odoo sink, where its API key is kept and
its fingerprint, and per MQTT sink when its client certificate expires.
`POST /api/v1/connections/<name>/rotate-key` takes a new Odoo API key, checks it
against the configured Odoo (`odoo check`'s key findings), stores it where the
configuration keeps it (new file, fsync, rename) and hands it to the running
sink, which uses it from its next call; the answer names the old key for
revocation by fingerprint. Only an admin may do any of it; no key is ever in an
answer, an error or a log line.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from flask import Blueprint, Response, abort, g, jsonify, render_template, request

from gateway.config import MqttSinkConfig, OdooSinkConfig
from gateway.credentials import CredentialError, certificates, fingerprint, locate
from gateway.errors import ConfigError
from webui.app import console
from webui.security import requires, who

fleet_bp = Blueprint("fleet", __name__)
log = logging.getLogger("linebridge.webui")
V1 = "/api/v1"
#: seconds a rotation may take (the check against Odoo included)
ROTATE_TIMEOUT = 60.0

_monitors: dict[int, Any] = {}
_lock = threading.Lock()


def _not_admin() -> Response | None:
    """A 403 answer (JSON under /api/) unless the session is an admin's; None when it is."""
    s = g.get("session")
    if s is not None and s.role == "admin":
        return None
    role = s.role if s else "nobody"
    log.warning("event=webui_change_refused user=%s role=%s path=%s needs=admin", who(), role, request.path)
    if request.path.startswith("/api/"):
        return _error(403, f"only an admin may see this, not a {role}")
    abort(403)


def _error(status: int, message: str, problems: list[str] | None = None) -> Response:
    resp = jsonify({"error": message, "problems": problems or []})
    resp.status_code = status
    return resp


@fleet_bp.get("/fleet")
def page() -> str | Response:
    from webui.pages import NAV
    if (refused := _not_admin()) is not None:
        return refused
    s = g.session
    return render_template("fleet.html", title="Fleet & keys", nav=NAV, active="fleet", user=s.user, role=s.role,
                           csrf_token=s.csrf, identity=console().identity())


def _monitor() -> Any:
    """The console's fleet monitor over the heartbeat's broker; None when there is no heartbeat."""
    c = console()
    cfg = c.bridge.config
    if cfg.heartbeat is None or not isinstance(cfg.sinks.get(cfg.heartbeat.sink), MqttSinkConfig):
        return None
    mq: MqttSinkConfig = cfg.sinks[cfg.heartbeat.sink]
    with _lock:
        mon = _monitors.get(id(c))
        if mon is not None and mon.broker.host == mq.host and mon.broker.port == mq.port:
            return mon
        if mon is not None:
            mon.stop()
        from gateway.fleet import Fleet
        from gateway.fleetcli import Broker, FleetMonitor
        broker = Broker(mq.host, mq.port, mq.tls, mq.username, mq.password, mq.ca_file, mq.certfile, mq.keyfile,
                        timeout=mq.timeout)
        # the console's own key is known; the others are marked unverified
        keys = {cfg.gateway.id: c.bridge.sup.key.public}
        mon = FleetMonitor(broker, Fleet(keys), client_id=f"linebridge-{cfg.gateway.id}-fleet")
        try:
            mon.start()
        except (ConnectionError, OSError) as exc:
            log.warning("event=fleet_monitor_failed broker=%s error=%r", broker.url, str(exc))
            raise
        _monitors[id(c)] = mon
        return mon


@fleet_bp.get(f"{V1}/fleet")
def fleet() -> Response:
    if (refused := _not_admin()) is not None:
        return refused
    try:
        mon = _monitor()
    except (ConnectionError, OSError) as exc:
        return _error(503, f"cannot reach the broker: {exc}")
    if mon is None:
        return jsonify({"configured": False, "gateways": [], "counts": {},
                        "reason": "no [heartbeat] on an MQTT connection: the fleet is read from its broker"})
    mon.subscribed.wait(2.0)
    return jsonify({"configured": True} | mon.snapshot())


@fleet_bp.get(f"{V1}/credentials")
def credentials() -> Response:
    if (refused := _not_admin()) is not None:
        return refused
    c = console()
    cfg = c.bridge.config
    paths = [*c.config_file.layers, c.config_file.path]
    odoo = []
    for name, sink in cfg.sinks_of(OdooSinkConfig).items():
        row: dict[str, Any] = {"sink": name, "url": sink.url, "database": sink.database, "login": sink.login,
                               "fingerprint": fingerprint(sink.api_key) if sink.api_key else None}
        try:
            source = locate(paths, name, "api_key")
            row |= {"kept": source.kind, "where": source.describe(), "rotatable": source.kind != "env"}
        except CredentialError as exc:
            row |= {"kept": None, "where": str(exc), "rotatable": False}
        odoo.append(row)
    return jsonify({"odoo": odoo, "certificates": certificates(cfg.sinks)})


@fleet_bp.post(f"{V1}/connections/<name>/rotate-key")
@requires("connections")
def rotate_key(name: str) -> Response:
    from gateway.sinks.odoo.rotate import RotationRefused, rotate
    c = console()
    body = request.get_json(silent=True)
    new = body.get("api_key") if isinstance(body, dict) else None
    if not isinstance(new, str) or not new.strip():
        return _error(422, "the new API key is required", ["api_key: required, the new key as Odoo showed it"])
    sink = c.bridge.config.sinks.get(name)
    if not isinstance(sink, OdooSinkConfig):
        return _error(404, f"no Odoo connection {name!r}")
    paths = [*c.config_file.layers, c.config_file.path]
    try:
        with c.config_file._lock:     # no console edit of the file in between
            before = c.config_file.text()
            done = asyncio.run(asyncio.wait_for(rotate(paths, new, name, c.state_dir, by=who()), ROTATE_TIMEOUT))
            after = c.config_file.text()
            if after != before:       # kept inline in the console's file: the history says so (masked)
                if not c.config_file._entries():
                    c.config_file._record(before, "as found", "the file before the first change from the console")
                c.config_file._record(after, who(), f"sinks.{name}.api_key rotated; secret changed: "
                                                    f"sinks.{name}.api_key")
    except RotationRefused as exc:
        return _error(422, str(exc), [str(f) for f in exc.findings if f.level == "blocker"])
    except CredentialError as exc:
        return _error(422, str(exc))
    except ConfigError as exc:
        return _error(422, "the configuration does not validate", exc.problems)
    except asyncio.TimeoutError:
        return _error(503, f"the check against Odoo took longer than {ROTATE_TIMEOUT:.0f} s; nothing was stored")
    key = new.strip()

    async def swap() -> bool:
        sup = c.bridge.sup
        running = sup.sinks.get(name)
        if running is None or not hasattr(running, "rotate_key"):
            return False
        running.rotate_key(key, by=f"console:{who()}")
        return True

    swapped = c.bridge.call(swap)
    log.warning("event=webui_key_rotated sink=%s user=%s api_key=%s old=%s swapped=%s", name, who(), done.new,
                done.old, swapped)
    return jsonify({"connection": name, "old": done.old, "new": done.new, "stored_in": done.source,
                    "in_use": swapped, "findings": [str(f) for f in done.findings],
                    "revoke": f"revoke the old API key {done.old} in Odoo at {done.url} (database {done.database}, "
                              f"user {done.login}: Preferences > Account Security > API Keys)"})

