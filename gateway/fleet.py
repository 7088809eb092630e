"""The fleet: every gateway's last word on a broker, as the plant's monitoring reads it.

It owns what `linebridge fleet` and the console's fleet page make of the
retained messages under `<prefix>/status` (the heartbeat's `linebridge.status/1`,
see `gateway.heartbeat`) and `<prefix>/oee/#` (OEE, when a gateway publishes
it: `oee/<machine>/running` the running shift so far, `oee/<machine>` the last
closed shift's `oee` event, `oee/<machine>/day` the last day's; an `oee` field
of the status is read too): one `GatewayView` per topic prefix with its state
(`online`, `stale` when no status came for more than 3x its interval,
`offline` by its last will or a clean stop), version, environment, backlog,
oldest unacknowledged age, dead letters, service levels, OEE, last delivery,
client-certificate warnings and whether its signature was verified against a
known public key. The parser takes what it knows and ignores the rest, so a
newer gateway's status with more fields still reads. Memory is bounded: at most
`cap` gateways (the oldest offline, then the oldest stale, make room), each
message at most `MAX_PAYLOAD` bytes, at most `MAX_MACHINES` OEE machines each.
It does not own the MQTT connection (`gateway.fleetcli`) nor the page.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from gateway.servicelevel import event_epoch
from gateway.signing import KeyFileError, PublicKey, verify

#: the topics a fleet monitor subscribes to by default (`linebridge/<site>/<gateway>/...`)
DEFAULT_TOPICS = ("linebridge/+/+/status", "linebridge/+/+/oee/#")   # oee/# matches .../oee itself too
#: gateways tracked at most; beyond, the oldest offline (then stale) one is forgotten
DEFAULT_CAP = 10_000
MAX_PAYLOAD = 256 * 1024
MAX_MACHINES = 512
#: a status older than this many intervals is stale
STALE_INTERVALS = 3.0
DEFAULT_INTERVAL = 10.0


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _sum(value: Any) -> int | None:
    """The total of a per-sink mapping of counts (or a bare count)."""
    if isinstance(value, Mapping):
        nums = [n for n in (_num(v) for v in value.values()) if n is not None]
        return int(sum(nums)) if nums else (0 if not value else None)
    n = _num(value)
    return int(n) if n is not None else None


def _text(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def oee_share(value: Any) -> float | None:
    """An OEE figure as a share 0..1 from a number (0..1, or a percentage) or a mapping with `oee`."""
    if isinstance(value, Mapping):
        value = value.get("oee")
    n = _num(value)
    if n is None or n < 0:
        return None
    return n / 100.0 if n > 1.0 else n


@dataclass
class GatewayView:
    """One gateway as the fleet sees it (kept small: figures, not the whole status)."""

    prefix: str
    gateway: str | None = None
    site: str | None = None
    state: str = "unknown"              # online | offline (as the gateway or its will said)
    reason: str | None = None           # why offline: "connection lost" (the will) or "stopped"
    version: str | None = None
    environment: str | None = None
    interval_s: float = DEFAULT_INTERVAL
    status_at: float | None = None      # when the status was published (live: received; retained: its ts)
    backlog: int | None = None
    oldest_age_s: float | None = None
    dead_letters: int | None = None
    service_levels: dict[str, dict[str, Any]] = field(default_factory=dict)   # kind -> worst over sinks
    last_delivery: float | None = None
    certificates: dict[str, dict[str, Any]] = field(default_factory=dict)
    oee: dict[str, float] = field(default_factory=dict)  # machine -> share 0..1 ("" for the gateway's own)
    oee_period: dict[str, str] = field(default_factory=dict)  # machine -> running | shift (what `oee` holds)
    oee_day: dict[str, float] = field(default_factory=dict)   # machine -> the last closed day's share
    kid: str | None = None
    signature: str = "unsigned"         # verified | unverified (no known key) | invalid | unsigned
    signature_error: str | None = None
    seen_at: float = 0.0                # when the monitor last heard of it (for eviction)

    def effective_state(self, now: float) -> str:
        """online, stale, offline or unknown (OEE seen but no status yet)."""
        if self.state == "online" and self.status_at is not None \
                and now - self.status_at > STALE_INTERVALS * self.interval_s:
            return "stale"
        return self.state

    def age_s(self, now: float) -> float | None:
        return None if self.status_at is None else max(0.0, now - self.status_at)

    def as_dict(self, now: float) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("seen_at",)}
        out["state"] = self.effective_state(now)
        out["status_age_s"] = None if self.status_at is None else round(self.age_s(now) or 0.0, 1)
        out["oee_mean"] = round(sum(self.oee.values()) / len(self.oee), 4) if self.oee else None
        sl = self.worst_service_level()
        out["within_target_worst"] = sl
        return out

    def worst_service_level(self) -> dict[str, Any] | None:
        """The kind with the lowest share delivered within its target (None before any delivery)."""
        rows = [(v["within_target"], k) for k, v in self.service_levels.items() if v.get("within_target") is not None]
        if not rows:
            return None
        share, kind = min(rows)
        return {"kind": kind, "within_target": share}


class Fleet:
    """The gateways heard on the broker, keyed by topic prefix; feed it with `receive`."""

    def __init__(self, keys: Mapping[str, PublicKey] | None = None, cap: int = DEFAULT_CAP,
                 clock: Callable[[], float] = time.time) -> None:
        #: known public keys by gateway id or by topic prefix
        self.keys = dict(keys or {})
        self.cap = cap
        self.clock = clock
        self.gateways: dict[str, GatewayView] = {}
        self.dropped = 0        # gateways refused because the table was full of live ones
        self.evicted = 0        # offline or stale gateways forgotten to make room
        self.rejected = 0       # messages that were not JSON objects or too large
        self._full_until = 0.0  # after a scan found nothing to evict: new gateways are dropped until then

    # -- intake ------------------------------------------------------------------------
    def receive(self, topic: str, payload: bytes, retained: bool = False) -> GatewayView | None:
        """One MQTT message; returns the gateway it concerned (None when it was ignored)."""
        prefix, kind, machine, period = _split(topic)
        if prefix is None:
            return None
        if len(payload) > MAX_PAYLOAD:
            self.rejected += 1
            return None
        if not payload:         # a cleared retained topic: the gateway is gone from the broker
            if kind == "status":
                self.gateways.pop(prefix, None)
            return None
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            self.rejected += 1
            return None
        if not isinstance(body, dict):
            self.rejected += 1
            return None
        view = self._view(prefix)
        if view is None:
            return None
        now = self.clock()
        view.seen_at = now
        if kind == "status":
            self._status(view, body, retained, now)
        else:
            self._oee(view, body, machine, period)
        return view

    def _view(self, prefix: str) -> GatewayView | None:
        view = self.gateways.get(prefix)
        if view is not None:
            return view
        if len(self.gateways) >= self.cap and not self._evict():
            self.dropped += 1
            return None
        view = self.gateways[prefix] = GatewayView(prefix)
        return view

    def _evict(self) -> bool:
        """Forget the oldest offline (else unknown, else stale) gateway; one scan, at most once a second
        while the table is full of online gateways (a flood of new names costs a dict lookup each)."""
        now = self.clock()
        if now < self._full_until:
            return False
        oldest: dict[str, GatewayView] = {}
        for v in self.gateways.values():
            state = v.effective_state(now)
            if state != "online" and (state not in oldest or v.seen_at < oldest[state].seen_at):
                oldest[state] = v
        for state in ("offline", "unknown", "stale"):
            if state in oldest:
                del self.gateways[oldest[state].prefix]
                self.evicted += 1
                return True
        self._full_until = now + 1.0
        return False

    def _status(self, view: GatewayView, body: dict[str, Any], retained: bool, now: float) -> None:
        view.gateway = _text(body.get("gateway")) or view.gateway
        view.site = _text(body.get("site")) or view.site
        state = body.get("state")
        view.state = state if state in ("online", "offline") else "unknown"
        view.reason = _text(body.get("reason")) if view.state == "offline" else None
        view.version = _text(body.get("version"), 64) or view.version
        view.environment = _text(body.get("environment"), 32) or view.environment
        interval = _num(body.get("interval_s"))
        if interval is not None and interval > 0:
            view.interval_s = interval
        ts = event_epoch(body.get("ts")) if isinstance(body.get("ts"), str) else None
        # a live message is as fresh as its arrival; a retained one is as old as it says (never newer than now)
        view.status_at = min(ts, now) if retained and ts is not None else now
        self._signature(view, body)
        if view.state != "online":
            return
        view.backlog = _sum(body.get("backlog"))
        view.dead_letters = _sum(body.get("dead_letters"))
        view.oldest_age_s = _num(body.get("oldest_unacked_age_s"))
        view.service_levels = _worst_levels(body.get("service_levels"))
        sinks = body.get("sinks")
        if isinstance(sinks, Mapping):
            deliveries = [_num(s.get("last_delivery")) for s in sinks.values() if isinstance(s, Mapping)]
            known = [d for d in deliveries if d is not None]
            view.last_delivery = max(known) if known else view.last_delivery
        certs = body.get("certificates")
        view.certificates = ({str(k)[:64]: {f: v[f] for f in ("not_after", "days_left", "expiring", "error")
                                            if f in v}
                              for k, v in list(certs.items())[:16] if isinstance(v, Mapping)}
                             if isinstance(certs, Mapping) else {})
        if "oee" in body:
            self._oee(view, {"oee": body["oee"]}, None, "running")

    def _signature(self, view: GatewayView, body: dict[str, Any]) -> None:
        sig = body.get("sig")
        view.kid = _text(sig.get("kid"), 64) if isinstance(sig, Mapping) else None
        view.signature_error = None
        if not isinstance(sig, Mapping):
            view.signature = "unsigned"
            return
        known = self.keys.get(view.prefix) or (self.keys.get(view.gateway) if view.gateway else None)
        if known is None:
            # not verified: the key the status carries proves only that the message is whole
            view.signature = "unverified"
            embedded = body.get("key")
            if isinstance(embedded, Mapping) and isinstance(embedded.get("public_key"), str):
                try:
                    problem = verify(body, PublicKey.parse(embedded["public_key"]))
                except KeyFileError as exc:
                    problem = str(exc)
                if problem:
                    view.signature, view.signature_error = "invalid", problem
            return
        problem = verify(body, known)
        view.signature, view.signature_error = ("invalid", problem) if problem else ("verified", None)

    def _oee(self, view: GatewayView, body: dict[str, Any], machine: str | None, period: str) -> None:
        """`period`: running (the shift so far), shift (the last closed one) or day. A running figure
        is what the table shows; a closed shift's only until the machine's running one arrives."""
        data = body.get("data")
        value = body["oee"] if "oee" in body else (data.get("oee") if isinstance(data, Mapping) else None)
        if machine is None and isinstance(value, Mapping) and "oee" not in value:
            items = [(str(k), oee_share(v)) for k, v in value.items()]   # {machine: figure, ...}
        else:
            source = body.get("source")
            name = machine or _text(body.get("machine"), 64) or (
                _text(source.get("machine"), 64) if isinstance(source, Mapping) else None) or ""
            items = [(name, oee_share(value))]
        for name, share in items:
            name = name[:64]
            if share is None:
                continue
            if period == "day":
                if name in view.oee_day or len(view.oee_day) < MAX_MACHINES:
                    view.oee_day[name] = round(share, 4)
                continue
            if name not in view.oee and len(view.oee) >= MAX_MACHINES:
                continue
            if period == "shift" and view.oee_period.get(name) == "running":
                continue
            view.oee[name] = round(share, 4)
            view.oee_period[name] = period

    # -- reading -----------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [v.as_dict(now) for _, v in sorted(self.gateways.items())]

    def counts(self) -> dict[str, int]:
        now = self.clock()
        out = {"online": 0, "stale": 0, "offline": 0, "unknown": 0}
        for v in self.gateways.values():
            out[v.effective_state(now)] += 1
        out |= {"total": len(self.gateways), "dropped": self.dropped, "evicted": self.evicted,
                "rejected": self.rejected,
                "unverified": sum(1 for v in self.gateways.values() if v.signature != "verified")}
        return out


def _split(topic: str) -> tuple[str | None, str, str | None, str]:
    """(prefix, 'status' | 'oee', machine, period) of a status or OEE topic; (None, '', None, '') otherwise.

    `<p>/status`; `<p>/oee` (the gateway's own figure or a {machine: figure} map); `<p>/oee/<m>` (the
    last closed shift); `<p>/oee/<m>/running` and `<p>/oee/<m>/day`."""
    levels = topic.split("/")
    if len(levels) >= 2 and levels[-1] == "status":
        return "/".join(levels[:-1]), "status", None, ""
    if len(levels) >= 2 and levels[-1] == "oee":
        return "/".join(levels[:-1]), "oee", None, "running"
    if len(levels) >= 4 and levels[-3] == "oee" and levels[-1] in ("running", "day"):
        return "/".join(levels[:-3]), "oee", levels[-2], levels[-1]
    if len(levels) >= 3 and levels[-2] == "oee":
        return "/".join(levels[:-2]), "oee", levels[-1], "shift"
    return None, "", None, ""


def _worst_levels(value: Any) -> dict[str, dict[str, Any]]:
    """Per event kind, over the sinks: the lowest share within target and the highest p95."""
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(value, Mapping):
        return out
    for sink in list(value.values())[:32]:
        if not isinstance(sink, Mapping):
            continue
        for kind, figures in list(sink.items())[:64]:
            if not isinstance(figures, Mapping):
                continue
            row = out.setdefault(str(kind)[:32], {})
            share, p95 = _num(figures.get("within_target")), _num(figures.get("p95_s"))
            if share is not None:
                row["within_target"] = min(share, row.get("within_target", share))
            if p95 is not None:
                row["p95_s"] = max(p95, row.get("p95_s", p95))
            target = _num(figures.get("target_s"))
            if target is not None:
                row["target_s"] = target
    return out


def load_keys(text: str) -> dict[str, PublicKey]:
    """Known public keys, one a line: `<gateway id or topic prefix> <public key as keys show prints it>`;
    `#` starts a comment. Raises KeyFileError naming the line of a bad key."""
    out: dict[str, PublicKey] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise KeyFileError(f"line {n}: expected '<gateway or prefix> <public key>'")
        try:
            out[parts[0]] = PublicKey.parse(parts[1])
        except KeyFileError as exc:
            raise KeyFileError(f"line {n}: {exc}") from exc
    return out
