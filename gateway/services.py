"""Services that run beside the supervisor in the gateway process, found by entry point.

The gateway never imports the web UI (imports run downhill: `webui` sits on top
of `gateway`); instead every package that wants to live in the gateway process
registers a factory under the `linebridge.services` entry-point group. A
factory is called as `factory(supervisor, config_path)` and returns a `Service`,
or None when the configuration does not ask for it. This module owns finding
them, starting them after the supervisor and stopping them before it.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from gateway.registry import group

log = logging.getLogger("linebridge.services")


class Service(Protocol):
    """What the gateway process runs beside its supervisor."""

    #: lines for the console when the service is up (where it listens, a setup code ...)
    banner: list[str]

    async def start(self) -> None:
        """Return once the service answers; raise if it cannot (a port in use, say)."""

    async def stop(self) -> None:
        """Stop within a few seconds; never raise."""


def load(supervisor: Any, config_path: Path | None) -> list[Service]:
    """Every registered service that this configuration asks for, not yet started."""
    out: list[Service] = []
    for ep in sorted(group("linebridge.services"), key=lambda e: e.name):
        factory = ep.load()
        service = factory(supervisor, config_path)
        if service is not None:
            log.info("event=service_loaded name=%s", ep.name)
            out.append(service)
    return out


async def start_all(services: list[Service]) -> None:
    for service in services:
        await service.start()


async def stop_all(services: list[Service]) -> None:
    for service in reversed(services):
        try:
            await service.stop()
        except Exception as exc:  # stopping must go on for the others and the supervisor
            log.error("event=service_stop_failed service=%r error=%r", service, str(exc))
