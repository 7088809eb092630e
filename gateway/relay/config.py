"""The relay's configuration (`relay.toml`): its broker subscription, its state, its Odoo sink.

It owns parsing and validating the file as a whole, every problem with its key
path. The broker section reuses the MQTT sink's connection keys (url, client
id, user, TLS files; see `gateway.sinks.config`), the Odoo section is an Odoo
sink section as a gateway has it. It does not own connecting or posting.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.base import ConfigCollector
from gateway.errors import ConfigError
from gateway.sinks.config import MqttSinkConfig, OdooSinkConfig, _mqtt_sink, parse_sinks

_TOP = {"relay", "broker", "odoo"}
_RELAY = {"id", "state_dir", "max_age_days", "max_skew_s", "batch_size"}
_BROKER = {"url", "client_id", "username", "password", "password_env", "password_file", "ca_file",
           "certfile", "keyfile", "keepalive", "topics", "group", "session_expiry", "timeout", "allow_insecure"}
_GROUP = re.compile(r"^[^+#/\x00]+$")
DEFAULT_TOPICS = ("linebridge/+/+/events/#",)


@dataclass(frozen=True)
class BrokerConfig:
    """Where envelopes come from: the connection (as an MQTT sink has it) and what to subscribe to."""

    link: MqttSinkConfig
    topics: tuple[str, ...]
    group: str                    # shared subscription group: relays of one group split the messages;
    #                               "" subscribes plainly (one relay, or relays each given their gateways' topics)
    session_expiry: int           # s the broker keeps this relay's session and queue while it is away

    def filters(self) -> list[str]:
        return [f"$share/{self.group}/{t}" if self.group else t for t in self.topics]


@dataclass(frozen=True)
class RelayConfig:
    id: str
    state_dir: Path
    broker: BrokerConfig
    odoo: OdooSinkConfig
    max_age_days: float = 6.0     # older envelopes are replays: the dedupe has forgotten them by then
    max_skew_s: float = 600.0     # an event stamped further in the future than this is implausible
    batch_size: int = 500         # messages judged and stored per transaction at most

    @property
    def registry_path(self) -> Path:
        return self.state_dir / "gateways.json"

    @property
    def quarantine_path(self) -> Path:
        return self.state_dir / "quarantine.jsonl"

    @property
    def store_path(self) -> Path:
        return self.state_dir / "store"


class _Site:
    def __init__(self, id: str) -> None:
        self.id = id
        self.site = "relay"


def parse(raw: dict[str, Any], base: Path) -> RelayConfig:
    """A validated RelayConfig from the parsed TOML; ConfigError lists every problem."""
    c = ConfigCollector()
    c.unknown_keys(raw, "", _TOP)
    relay = c.get(raw, "", "relay", dict, default={}) or {}
    c.unknown_keys(relay, "relay", _RELAY)
    rid = c.get(relay, "relay", "id", str, required=True, default="relay") or "relay"
    state = Path(c.get(relay, "relay", "state_dir", str, default=f"/var/lib/linebridge-relay/{rid}"))
    broker = c.get(raw, "", "broker", dict, required=True, default={}) or {}
    c.unknown_keys(broker, "broker", _BROKER)
    topics = tuple(c.get(broker, "broker", "topics", list, default=list(DEFAULT_TOPICS)) or DEFAULT_TOPICS)
    for i, t in enumerate(topics):
        if not isinstance(t, str) or not t or t.startswith("$"):
            c.add(f"broker.topics[{i}]", f"must be a topic filter (no $share prefix: see group), got {t!r}")
    group = c.get(broker, "broker", "group", str, default="linebridge-relay")
    group = "linebridge-relay" if group is None else group
    if group and not _GROUP.match(group):
        c.add("broker.group", f"must be one topic level without '+', '#' or '/', got {group!r}")
    expiry = c.get(broker, "broker", "session_expiry", int, default=7 * 86400, minimum=0, maximum=2**32 - 1)
    link_section = {k: v for k, v in broker.items() if k not in ("topics", "group", "session_expiry")}
    link_section.setdefault("client_id", f"linebridge-relay-{rid}")
    link = _mqtt_sink(c, "broker", link_section, "broker", _Site(rid))
    odoo_raw = c.get(raw, "", "odoo", dict, required=True, default={}) or {}
    sinks = parse_sinks(c, {"odoo": dict(odoo_raw, type="odoo")}, _Site(rid))
    # below the store's 7-day duplicate window (StoreOptions.dedupe_ttl), with a margin for clock skew
    max_age = c.get(relay, "relay", "max_age_days", float, default=6.0, minimum=0.01, maximum=6.9)
    skew = c.get(relay, "relay", "max_skew_s", float, default=600.0, minimum=1, maximum=86400)
    batch = c.get(relay, "relay", "batch_size", int, default=500, minimum=1, maximum=10000)
    if c.issues:
        raise ConfigError([f"{i.path}: {i.message}" for i in c.issues])
    odoo = sinks["odoo"]
    assert isinstance(odoo, OdooSinkConfig)
    if not state.is_absolute():
        state = base / state
    return RelayConfig(rid, state, BrokerConfig(link, topics, group, int(expiry)), odoo, max_age, skew, batch)


def load(path: Path | str) -> RelayConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    try:
        return parse(raw, path.parent)
    except ConfigError as exc:
        raise ConfigError([f"{path}: {p}" for p in exc.problems]) from None
