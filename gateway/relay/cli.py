"""`linebridge relay ...`: run the relay, register gateway keys, list and settle the quarantine.

    linebridge relay --config relay.toml                  run (SIGTERM/SIGINT stop it cleanly)
    linebridge relay register GATEWAY_ID KEY --config F   KEY as `linebridge keys show` prints it
    linebridge relay gateways --config F [--json]         registered gateways, last event seen
    linebridge relay quarantine --config F [--json]       refused messages with their reasons
        [--show ID] [--discard ID ...] [--accept ID ...]

Accepting a quarantined message publishes it again on its topic (QoS 1), so a
relay of the group judges it afresh: register the gateway's key first, say.
It owns the arguments and exit codes (0 ok, 1 refused, 2 usage or configuration).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.relay import config as config_mod


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="linebridge relay", description=__doc__.split("\n\n")[0])
    p.add_argument("action", nargs="?", default="run", choices=["run", "register", "gateways", "quarantine"])
    p.add_argument("args", nargs="*", help="register: GATEWAY_ID KEY")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--json", action="store_true")
    p.add_argument("--show", type=int, metavar="ID")
    p.add_argument("--discard", type=int, nargs="+", metavar="ID", default=[])
    p.add_argument("--accept", type=int, nargs="+", metavar="ID", default=[])
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = config_mod.load(args.config)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    if args.action == "run":
        return _run(cfg, args.log_level)
    if args.action == "register":
        return _register(cfg, args.args)
    if args.action == "gateways":
        return _gateways(cfg, args.json)
    return _quarantine(cfg, args)


def _run(cfg: config_mod.RelayConfig, level: str) -> int:
    from gateway import logs
    from gateway.relay.service import Relay
    logs.setup(level)

    from gateway.relay.registry import RegistryError

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Relay(cfg).run(stop)

    try:
        asyncio.run(go())
    except RegistryError as exc:
        print(f"linebridge relay: {exc}", file=sys.stderr)
        return 2
    return 0


def _register(cfg: config_mod.RelayConfig, rest: list[str]) -> int:
    from gateway.relay.registry import Registry, RegistryError
    if len(rest) != 2:
        print("usage: linebridge relay register GATEWAY_ID KEY --config relay.toml", file=sys.stderr)
        return 2
    try:
        entry = Registry(cfg.registry_path).register(rest[0], rest[1])
    except RegistryError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # KeyFileError: not a key
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print(f"registered gateway {entry.gateway}: key id (fingerprint) {entry.key.kid}")
    print("compare it with the `kid` that `linebridge keys show` prints on that gateway")
    return 0


def _status(cfg: config_mod.RelayConfig) -> dict[str, Any]:
    try:
        return json.loads((cfg.state_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _gateways(cfg: config_mod.RelayConfig, as_json: bool) -> int:
    from gateway.relay.registry import Registry
    reg = Registry(cfg.registry_path)
    last = _status(cfg).get("last_event", {})
    rows = [{"gateway": g, "kid": r.key.kid, "public_key": r.key.b64, "since": r.since,
             "last_event": last.get(g)} for g, r in sorted(reg.by_gateway.items())]
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in rows:
        seen = "never" if row["last_event"] is None else f"{time.time() - row['last_event']:.0f}s ago"
        print(f"{row['gateway']}  kid={row['kid']}  last event {seen}")
    return 0


def _quarantine(cfg: config_mod.RelayConfig, args: argparse.Namespace) -> int:
    from gateway.relay.quarantine import Quarantine
    q = Quarantine(cfg.quarantine_path)
    if args.discard:
        taken = q.take(set(args.discard))
        print(f"discarded {len(taken)} message(s)")
        return 0 if len(taken) == len(set(args.discard)) else 1
    if args.accept:
        return _accept(cfg, q, set(args.accept))
    entries = q.entries()
    if args.show is not None:
        found = [e for e in entries if e["id"] == args.show]
        if not found:
            print(f"no quarantined message {args.show}", file=sys.stderr)
            return 1
        print(json.dumps(found[0], indent=1, ensure_ascii=False))
        return 0
    if args.json:
        print(json.dumps([{k: e[k] for k in ("id", "at", "topic", "reason")} for e in entries], indent=1))
        return 0
    for e in entries:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e["at"]))
        print(f"{e['id']}  {when}  {e['topic']}  {e['reason']}")
    print(f"{len(entries)} quarantined message(s)", file=sys.stderr)
    return 0


def _accept(cfg: config_mod.RelayConfig, q: Any, ids: set[int]) -> int:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    link = cfg.broker.link
    entries = [e for e in q.entries() if e["id"] in ids]
    if len(entries) != len(ids):
        print(f"no quarantined message(s) {sorted(ids - {e['id'] for e in entries})}", file=sys.stderr)
        return 1
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
    client.connect_timeout = link.timeout
    if link.username is not None:
        client.username_pw_set(link.username, link.password)
    if link.tls:
        import ssl
        ctx = ssl.create_default_context(cafile=link.ca_file)
        if link.certfile:
            ctx.load_cert_chain(link.certfile, link.keyfile)
        client.tls_set_context(ctx)
    try:
        client.connect(link.host, link.port, keepalive=30)
    except OSError as exc:
        print(f"cannot reach the broker {link.url}: {exc}", file=sys.stderr)
        return 1
    client.loop_start()
    try:
        for e in entries:
            info = client.publish(e["topic"], e["payload"].encode("utf-8"), qos=1)
            info.wait_for_publish(link.timeout)
            if not info.is_published():
                print(f"{e['id']}: not acknowledged by the broker within {link.timeout:g}s", file=sys.stderr)
                return 1
            q.take({e["id"]})
            print(f"accepted {e['id']}: published again on {e['topic']}")
    finally:
        client.disconnect()
        client.loop_stop()
    return 0
