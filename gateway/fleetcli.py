"""`linebridge fleet --broker URL`: the fleet's gateways, read from their retained topics on a broker.

It owns the monitor's MQTT connection (`FleetMonitor`: paho in its own network
thread, subscribed to the status and OEE topics, feeding a `gateway.fleet.Fleet`;
the console's fleet page uses the same class) and the command: wait until the
retained messages are in (or `--wait` seconds), then print a table or `--json`,
once or every `--watch` seconds. The broker's password comes from
`--password-file` or `LINEBRIDGE_FLEET_PASSWORD`, never from the command line
(where `ps` would show it), and is never printed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from gateway.fleet import DEFAULT_CAP, DEFAULT_TOPICS, Fleet, load_keys
from gateway.signing import KeyFileError

PASSWORD_ENV = "LINEBRIDGE_FLEET_PASSWORD"


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    timeout: float = 10.0

    @classmethod
    def parse(cls, url: str, **kw: Any) -> "Broker":
        m = re.match(r"^(mqtts?)://(?:([^@/:]+)@)?(\[[0-9A-Fa-f:.]+\]|[^:/\s\[\]@]+)(?::(\d{1,5}))?/?$", url)
        if not m:
            raise ValueError(f"the broker is mqtt://[user@]host[:port] or mqtts://..., got {url!r}")
        tls = m.group(1) == "mqtts"
        port = int(m.group(4)) if m.group(4) else (8883 if tls else 1883)
        if not 0 < port < 65536:
            raise ValueError(f"port must be 1..65535, got {port}")
        if m.group(2) and not kw.get("username"):
            kw["username"] = m.group(2)
        return cls(m.group(3).strip("[]"), port, tls, **kw)

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class FleetMonitor:
    """One subscribing connection that keeps `fleet` up to date; paho reconnects it with capped backoff."""

    def __init__(self, broker: Broker, fleet: Fleet, topics: tuple[str, ...] = DEFAULT_TOPICS,
                 client_id: str | None = None) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        self.broker = broker
        self.fleet = fleet
        self.topics = topics
        self.lock = threading.Lock()          # the fleet is fed from paho's thread and read from others
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.last_error: str | None = None
        self.messages = 0
        self.last_message_at = 0.0
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                   client_id=client_id or f"linebridge-fleet-{os.getpid()}-{int(time.time())}",
                                   clean_session=True, protocol=mqtt.MQTTv311)
        c = self._client
        c.connect_timeout = broker.timeout
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        if broker.username is not None:
            c.username_pw_set(broker.username, broker.password)
        if broker.tls:
            ctx = ssl.create_default_context(cafile=broker.ca_file)
            if broker.certfile:
                ctx.load_cert_chain(broker.certfile, broker.keyfile)
            c.tls_set_context(ctx)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            self.last_error = f"the broker refused the connection: {rc}"
            return
        self.last_error = None
        self.connected.set()
        client.subscribe([(t, 1) for t in self.topics])

    def _on_subscribe(self, *_: Any) -> None:
        self.last_message_at = max(self.last_message_at, time.monotonic())
        self.subscribed.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        self.connected.clear()
        if rc.is_failure:
            self.last_error = f"connection lost: {rc}"

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.fleet.receive(msg.topic, msg.payload, retained=bool(msg.retain))
            self.messages += 1
            self.last_message_at = time.monotonic()

    def start(self) -> None:
        """Connect (within the broker's timeout) and run paho's loop in its own thread."""
        try:
            self._client.connect(self.broker.host, self.broker.port, keepalive=30)
        except ssl.SSLError as exc:
            raise ConnectionError(f"TLS handshake with {self.broker.url} failed: {exc.reason or exc}") from exc
        except OSError as exc:
            raise ConnectionError(f"cannot connect to {self.broker.url}: {exc.strerror or exc}") from exc
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def settle(self, quiet: float = 0.5, timeout: float = 10.0) -> bool:
        """Wait until subscribed and no message came for `quiet` s (the retained ones are in); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.subscribed.is_set() and time.monotonic() - self.last_message_at >= quiet:
                return True
            time.sleep(0.05)
        return False

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"broker": self.broker.url, "connected": self.connected.is_set(),
                    "last_error": self.last_error, "counts": self.fleet.counts(), "gateways": self.fleet.rows()}


# -- the command ------------------------------------------------------------------------

def add_parser(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("fleet", help="every gateway's retained status on a broker: state, backlog, service "
                                     "levels, OEE; flags stale and offline gateways")
    f.add_argument("--broker", required=True, help="mqtt://[user@]host[:port] or mqtts://...")
    f.add_argument("--username", default=None)
    f.add_argument("--password-file", type=Path, default=None,
                   help=f"a file holding the broker password (or set {PASSWORD_ENV})")
    f.add_argument("--ca-file", default=None)
    f.add_argument("--certfile", default=None, help="client certificate (with --keyfile)")
    f.add_argument("--keyfile", default=None)
    f.add_argument("--topic", action="append", default=None,
                   help=f"topic filter to subscribe (repeatable; default {' '.join(DEFAULT_TOPICS)})")
    f.add_argument("--keys", type=Path, default=None,
                   help="known public keys, one a line: '<gateway id or topic prefix> <key as `keys show` prints>'")
    f.add_argument("--cap", type=int, default=DEFAULT_CAP, help="gateways tracked at most")
    f.add_argument("--wait", type=float, default=10.0, help="seconds at most to collect the retained messages")
    f.add_argument("--watch", type=float, default=None, metavar="S", help="print again every S seconds")
    f.add_argument("--json", action="store_true")


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        password = (args.password_file.read_text(encoding="utf-8").strip() if args.password_file
                    else os.environ.get(PASSWORD_ENV))
        broker = Broker.parse(args.broker, username=args.username, password=password, ca_file=args.ca_file,
                              certfile=args.certfile, keyfile=args.keyfile)
        keys = load_keys(args.keys.read_text(encoding="utf-8")) if args.keys else {}
    except (ValueError, KeyFileError) as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"fleet: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    monitor = FleetMonitor(broker, Fleet(keys, cap=max(1, args.cap)), tuple(args.topic or DEFAULT_TOPICS))
    try:
        monitor.start()
    except (ConnectionError, ssl.SSLError, OSError) as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    try:
        if not monitor.subscribed.wait(args.wait):
            print(f"fleet: not subscribed on {broker.url} within {args.wait:g} s"
                  f"{': ' + monitor.last_error if monitor.last_error else ''}", file=sys.stderr)
            return 1
        monitor.settle(timeout=args.wait)
        while True:
            _print(monitor.snapshot(), args.json, out)
            if args.watch is None:
                break
            time.sleep(max(0.5, args.watch))
    except KeyboardInterrupt:
        pass
    finally:
        monitor.stop()
    return 0


def _print(snap: dict[str, Any], as_json: bool, out: TextIO) -> None:
    if as_json:
        out.write(json.dumps(snap, sort_keys=True) + "\n")
    else:
        out.write(table(snap, time.time()) + "\n")
    out.flush()


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{100 * share:.0f}%"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def _flags(row: dict[str, Any]) -> str:
    flags = []
    if row["state"] in ("stale", "offline"):
        flags.append(row["state"].upper() + (f" ({row['reason']})" if row.get("reason") else ""))
    if row["signature"] != "verified":
        flags.append(row["signature"])
    for name, cert in (row.get("certificates") or {}).items():
        if cert.get("expiring"):
            flags.append(f"cert {name} expires in {cert.get('days_left', '?')}d")
    return ", ".join(flags)


COLUMNS = ("GATEWAY", "SITE", "STATE", "VERSION", "ENV", "BACKLOG", "OLDEST", "DEAD", "WORST SLA", "OEE",
           "LAST DELIVERY", "SEEN", "FLAGS")


def table(snap: dict[str, Any], now: float) -> str:
    """The fleet as a fixed-width table, one gateway a line, then the counts."""
    rows = []
    for r in snap["gateways"]:
        sl = r.get("within_target_worst")
        rows.append((r.get("gateway") or r["prefix"], r.get("site") or "—", r["state"], r.get("version") or "—",
                     r.get("environment") or "—",
                     "—" if r.get("backlog") is None else str(r["backlog"]),
                     _age(r.get("oldest_age_s")),
                     "—" if r.get("dead_letters") is None else str(r["dead_letters"]),
                     "—" if sl is None else f"{_pct(sl['within_target'])} {sl['kind']}",
                     _pct(r.get("oee_mean")),
                     "—" if r.get("last_delivery") is None else _age(now - r["last_delivery"]) + " ago",
                     _age(r.get("status_age_s")) + " ago" if r.get("status_age_s") is not None else "—",
                     _flags(r)))
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    c = snap["counts"]
    lines.append(f"{c['total']} gateway(s): {c['online']} online, {c['stale']} stale, {c['offline']} offline, "
                 f"{c['unverified']} not verified"
                 + (f"; {c['dropped']} not tracked (cap)" if c["dropped"] else "")
                 + ("" if snap["connected"] else f"; NOT CONNECTED to {snap['broker']}: {snap['last_error']}"))
    return "\n".join(lines)

