"""The Flask application: what the console knows about its gateway, and the app factory.

`Console` gathers the parts a request may need (the bridge into the running
gateway, the accounts, sessions and login throttle, the configuration file
with its history, the log buffer and the device identity); `create_app` builds
a Flask app over one console with the pages, the `/api/v1` JSON API and
`/metrics`, and installs the security hooks. Nothing here starts a server
(see `webui.service`).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask

from webui import security
from webui.accounts import Accounts, Throttle
from webui.bridge import Bridge
from webui.configfile import ConfigFile
from webui.logbuffer import LogBuffer


@dataclass
class Console:
    bridge: Bridge
    accounts: Accounts
    throttle: Throttle
    sessions: security.Sessions
    config_file: ConfigFile
    logs: LogBuffer
    state_dir: Path
    tls_fingerprint: str | None
    metrics_token: str

    def identity(self) -> dict[str, Any]:
        key = self.bridge.sup.key
        return {"gateway": self.bridge.config.gateway.id, "site": self.bridge.config.gateway.site,
                "environment": self.bridge.config.gateway.environment, "key_id": key.kid, "public_key": key.public.b64,
                "tls_fingerprint_sha256": self.tls_fingerprint}


def metrics_token(state_dir: Path) -> str:
    """A bearer token Prometheus may use for /metrics (made once, kept in the state directory)."""
    path = Path(state_dir) / "webui" / "metrics-token"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(token + "\n", encoding="utf-8")
        path.chmod(0o600)
        return token


def create_app(console: Console, secure_cookies: bool = True) -> Flask:
    app = Flask("webui", static_folder=str(Path(__file__).parent / "static"),
                template_folder=str(Path(__file__).parent / "templates"))
    app.config.update(LB_METRICS_TOKEN=console.metrics_token, MAX_CONTENT_LENGTH=2 * 2**20,
                      JSON_SORT_KEYS=False, SEND_FILE_MAX_AGE_DEFAULT=3600)
    app.extensions["linebridge"] = console
    security.install(app, console.sessions, secure_cookies)
    from webui.api import api
    from webui.oee import oee
    from webui.pages import pages
    app.register_blueprint(pages)
    app.register_blueprint(api)
    app.register_blueprint(oee)
    from webui.fleet import fleet_bp
    app.register_blueprint(fleet_bp)
    return app


def console() -> Console:
    """The console of the app answering the current request."""
    from flask import current_app
    return current_app.extensions["linebridge"]
