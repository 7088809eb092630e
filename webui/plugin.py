"""The web UI's `linebridge.services` entry point, light on purpose.

Every gateway process reads its services' entry points; this factory looks at
the configuration first and imports the console (Flask, Werkzeug, Jinja2,
cheroot: about 10 MiB) only when `[webui]` is configured.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


def service(supervisor: Any, config_path: Path | None) -> Any:
    """A `webui.service.WebService` when the configuration has `[webui]`, else None."""
    if getattr(supervisor.config, "webui", None) is None or config_path is None:
        return None
    from webui.service import WebService
    return WebService(supervisor, config_path)
