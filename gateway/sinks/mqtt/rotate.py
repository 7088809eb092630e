"""An MQTT password rotation: check the new password with a connect, store it atomically, report fingerprints.

It owns the steps of `linebridge mqtt rotate-password`: the broker must accept
the new password already (set it there first: the connection in use stays up,
a broker does not log a connected client out), so the new password is tried
with one connect (`MqttLink.probe`, a client id of its own so the running
gateway's session is not taken over) and refused, nothing written, when the
broker says no; then it replaces the old one where the configuration keeps it
(`gateway.credentials.store`). A running gateway's link reads it again before
its next connect. Passwords appear only as fingerprints.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from gateway import config as config_mod
from gateway.config import MqttSinkConfig
from gateway.credentials import CredentialError, fingerprint, locate, store

log = logging.getLogger("linebridge.rotation")


async def rotate_password(paths: list[Path], new: str, sink_name: str | None = None,
                          state_dir: Path | None = None) -> list[str]:
    """The report's lines; CredentialError (nothing written) when the broker refuses the new password."""
    from gateway.sinks.mqtt.link import MqttLink
    cfg = config_mod.load(list(paths), state_dir=state_dir)
    sinks = {n: s for n, s in cfg.sinks_of(MqttSinkConfig).items() if s.username is not None}
    if sink_name is None and len(sinks) != 1:
        raise CredentialError(f"name the MQTT sink with --sink (with a username: {', '.join(sorted(sinks)) or 'none'})")
    sink = sinks.get(sink_name) if sink_name else next(iter(sinks.values()))
    if sink is None:
        raise CredentialError(f"no MQTT sink {sink_name!r} with a username (those: {', '.join(sorted(sinks)) or 'none'})")
    new = new.strip()
    if not new or new == sink.password:
        raise CredentialError("the new password is empty or the one in use")
    source = locate(list(paths), sink.name, "password")
    if source.kind == "env":
        store(source, new)          # raises: what to do instead
    probe = MqttLink(replace(sink, password=new, client_id=f"{sink.client_id}-rotate"))
    refused = await probe.probe()
    if refused is not None:
        log.warning("event=credential_rotation_refused sink=%s new=%s error=%r", sink.name, fingerprint(new), refused)
        raise CredentialError(f"the broker at {sink.url} refused user {sink.username!r} with the new password "
                              f"{fingerprint(new)} ({refused}); nothing was stored")
    store(source, new)
    old = fingerprint(sink.password) if sink.password else None
    log.warning("event=credential_stored sink=%s password=%s old=%s source=%s", sink.name, fingerprint(new), old,
                source.kind)
    return [f"sink {sink.name}: the broker at {sink.url} accepts user {sink.username!r} with the new password",
            f"sink {sink.name}: new password {fingerprint(new)} stored in {source.describe()}; a running gateway "
            "uses it from its next connect (the connection in use stays up)",
            f"sink {sink.name}: the old password {old} may now be removed on the broker"]
