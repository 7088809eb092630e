"""The relay's judgement of one message: authentic, well formed and plausible, or quarantined.

It owns the checks, in order, each refusal with its reason in words:
the payload is a `linebridge.event/1` envelope (fields and types, a business
kind, an `evt_` id, a UTC timestamp; the topic's last level names the same
kind); its `sig` names a key id registered for a gateway (`unregistered
key`); that gateway is the envelope's own (`gateway mismatch`); the signature
verifies over the canonical form (`bad signature`); it is not older than the
replay window (`replayed`: beyond it the duplicate suppression by event id,
in the relay's store and in Odoo's external ids, could have forgotten the
id), nor stamped in the future beyond the allowed skew; its quantities are
finite and not negative (`implausible`). A message that passes is appended
to the relay's store, where an event id already known (the same envelope
delivered twice: MQTT is at least once, and a gateway republishes what it
was not acknowledged) is counted as a duplicate and dropped. It does not own
the broker or the store.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from gateway.events import KINDS, SCHEMA
from gateway.relay.registry import Registry
from gateway.signing import verify
from store.layout import TELEMETRY_KINDS

_ID = re.compile(r"^evt_[0-9a-f]{32}$")
_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
_QUANTITIES = ("quantity", "qty", "count", "duration", "weight")
QUANTITY_MAX = 1e9
MAX_PAYLOAD = 256 * 1024       # a gateway's envelope is well under 2 KiB


@dataclass(frozen=True)
class Verdict:
    envelope: dict[str, Any] | None     # the envelope to store, or None
    reason: str | None                  # why it is quarantined, or None

    @property
    def ok(self) -> bool:
        return self.reason is None


class Judge:
    """Judges messages against the registry; `clock` gives epoch seconds."""

    def __init__(self, registry: Registry, max_age_s: float, max_skew_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.max_age_s = max_age_s
        self.max_skew_s = max_skew_s
        self.clock = clock

    def judge(self, topic: str, payload: bytes) -> Verdict:
        """Never raises: a message nothing here can make sense of is quarantined too, not retried forever."""
        if len(payload) > MAX_PAYLOAD:
            return Verdict(None, f"schema: {len(payload)} bytes, more than the {MAX_PAYLOAD} an envelope may have")
        try:
            env = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            return Verdict(None, f"schema: not JSON ({exc})")
        except RecursionError:
            return Verdict(None, "schema: JSON nested too deeply")
        try:
            reason = self._schema(topic, env) or self._source(env) or self._time(env) or _plausible(env)
        except Exception as exc:  # a shape no check foresaw: kept for a person, with what went wrong
            reason = f"schema: cannot be judged ({type(exc).__name__}: {exc})"
        return Verdict(None if reason else env, reason)

    def _schema(self, topic: str, env: Any) -> str | None:
        if not isinstance(env, dict):
            return "schema: not a JSON object"
        if env.get("schema") != SCHEMA:
            return f"schema: expected {SCHEMA}, got {env.get('schema')!r}"
        for key, kind in (("id", str), ("kind", str), ("ts", str), ("gateway", str), ("source", dict),
                          ("data", dict), ("sig", dict)):
            if not isinstance(env.get(key), kind):
                return f"schema: {key} missing or not a {kind.__name__}"
        if not isinstance(env.get("context", {}), dict):
            return "schema: context is not an object"
        if not _ID.match(env["id"]):
            return f"schema: id {env['id']!r} is not an event id"
        if env["kind"] not in KINDS or env["kind"] in TELEMETRY_KINDS:
            return f"schema: {env['kind']!r} is not a business event kind"
        if topic.rsplit("/", 1)[-1] != env["kind"]:
            return f"schema: topic {topic!r} does not name the envelope's kind {env['kind']!r}"
        return None

    def _source(self, env: dict[str, Any]) -> str | None:
        kid = env["sig"].get("kid")
        entry = self.registry.by_kid.get(kid) if isinstance(kid, str) else None
        if entry is None:
            return f"unregistered key: key id {kid!r} is not registered (gateway {env['gateway']!r})"
        if entry.gateway != env["gateway"]:
            return (f"gateway mismatch: envelope says gateway {env['gateway']!r}, "
                    f"key {kid} is registered for {entry.gateway!r}")
        problem = verify(env, entry.key)
        return None if problem is None else f"bad signature: {problem}"

    def _time(self, env: dict[str, Any]) -> str | None:
        ts = env["ts"]
        if not _TS.match(ts):
            return f"schema: ts {ts!r} is not UTC ISO 8601 with a Z"
        try:
            when = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return f"schema: ts {ts!r} is not a date"
        now = self.clock()
        if when < now - self.max_age_s:
            return (f"replayed: stamped {ts}, older than the {self.max_age_s / 86400:g}-day window "
                    "within which event ids are recognised")
        if when > now + self.max_skew_s:
            return f"implausible: stamped {ts}, more than {self.max_skew_s:g}s in the future"
        return None


def _plausible(env: dict[str, Any]) -> str | None:
    for key in _QUANTITIES:
        value = env["data"].get(key)
        if value is None or isinstance(value, bool):
            continue
        if not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value) or value < 0 or value > QUANTITY_MAX:
            return f"implausible: data.{key} = {value!r}"
    return None
