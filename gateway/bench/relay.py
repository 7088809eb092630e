"""`linebridge bench relay`: events/s one relay verifies and stores, from a real mosquitto.

The relay runs as it does in production (`gateway.relay.service.Relay`: a
persistent MQTT 5 session, a shared subscription, manual acknowledgement,
every signature verified against the registry, every batch appended in a
synced LMDB transaction before its PUBACKs). The messages are queued first:
the relay subscribes once and stops, N signed envelopes are published (QoS 1)
into its kept session, then the relay starts again and the clock runs until
its store holds all N: intake's throughput, from the broker's socket to the
disk, with nothing else competing. Odoo is left unreachable on purpose (its
sink waits on a closed port), so posting is not measured here. mosquitto is
configured with `max_inflight_messages 1000` and no queue limit; its default
of 20 messages in flight per client would cap any consumer that acknowledges
after a synced write. The cost of the signature check alone is measured too.
A second phase publishes at a steady `--rate` into an idle relay and reports
publish -> stored (synced in the relay's store, before the PUBACK) per event,
p50 and p99.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from gateway.bench.gateway import _Broker, _free_port
from gateway.events import event_id, iso_utc
from gateway.signing import DeviceKey, verify



def _broker(workdir: Path) -> _Broker:
    import getpass
    return _Broker(workdir, f"max_inflight_messages 1000\nmax_queued_messages 0\nuser {getpass.getuser()}\n", "relay")


def _envelopes(key: DeviceKey, n: int, start: int = 0) -> list[bytes]:
    now = time.time()
    out = []
    for i in range(start, start + n):
        env = {"schema": "linebridge.event/1", "id": event_id("bench-gw", "cnc01/scrap", str(i)), "seq": i + 1,
               "kind": "scrap", "ts": iso_utc(now), "gateway": "bench-gw",
               "source": {"device": "cnc01", "tag": "scrap"}, "data": {"quantity": 1},
               "context": {"machine": "CNC-01", "work_center": "CNC-01"}}
        out.append(json.dumps(key.sign(env), sort_keys=True, separators=(",", ":")).encode())
    return out


def _publish(port: int, topic: str, payloads: list[bytes]) -> float:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher", protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    done = threading.Event()
    acked = [0]

    def on_publish(*_args: Any) -> None:
        acked[0] += 1
        if acked[0] == len(payloads):
            done.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    started = time.perf_counter()
    for p in payloads:
        client.publish(topic, p, qos=1)
    if not done.wait(max(60.0, len(payloads) / 500)):
        raise RuntimeError(f"the broker acknowledged {acked[0]} of {len(payloads)} publishes")
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return elapsed


def _relay_config(root: Path, broker: int, batch: int) -> Path:
    cfg = root / "relay.toml"
    cfg.write_text(f"""
[relay]
id = "bench"
state_dir = "{root / 'state'}"
batch_size = {batch}

[broker]
url = "mqtt://127.0.0.1:{broker}"
allow_insecure = true

[odoo]
url = "http://127.0.0.1:{_free_port()}"
database = "none"
login = "none"
api_key = "none"
allow_insecure = true
""")
    return cfg


async def _run_relay(cfg_path: Path, until: int | None, timeout: float) -> tuple[float, int, int]:
    """Start a relay; stop once it subscribed (until None) or once it stored `until` events."""
    from gateway.relay import config as config_mod
    from gateway.relay.service import Relay
    relay = Relay(config_mod.load(cfg_path))
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    started = time.perf_counter()
    deadline = started + timeout
    try:
        while time.perf_counter() < deadline:
            if until is None and relay.subscriber is not None and relay.subscriber.subscribed.is_set():
                break
            if until is not None and relay.stats.stored + relay.stats.duplicates >= until:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return elapsed, relay.stats.stored, relay.stats.quarantined


async def _latency(cfg_path: Path, port: int, key: DeviceKey, rate: float, seconds: float) -> dict[str, float]:
    """publish -> stored in the relay's store (synced), per event, at a steady `rate` with no backlog."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from gateway.relay import config as config_mod
    from gateway.relay.service import Relay
    relay = Relay(config_mod.load(cfg_path))
    sent: dict[str, float] = {}
    stored: dict[str, float] = {}
    append = relay.committer.append

    async def timed(evs: list[dict[str, Any]], state: Any = None) -> Any:
        result = await append(evs, state)
        now = time.perf_counter()
        for ev in evs:
            stored.setdefault(ev["id"], now)
        return result

    relay.committer.append = timed  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    while relay.subscriber is None or not relay.subscriber.subscribed.is_set():
        await asyncio.sleep(0.01)
    n = int(rate * seconds)
    payloads = [(json.loads(p)["id"], p) for p in _envelopes(key, n, start=10_000_000)]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-latency", protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()

    def publish() -> None:
        t0 = time.perf_counter()
        for i, (eid, p) in enumerate(payloads):
            due = t0 + i / rate
            while (delay := due - time.perf_counter()) > 0:
                time.sleep(delay)
            sent[eid] = time.perf_counter()
            client.publish("linebridge/bench/bench-gw/events/scrap", p, qos=1)

    await asyncio.to_thread(publish)
    deadline = time.perf_counter() + 30
    while len(stored) < n and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    client.disconnect()
    client.loop_stop()
    stop.set()
    await asyncio.wait_for(task, 30)
    delays = sorted((stored[e] - sent[e]) * 1000 for e in sent if e in stored)
    if not delays:
        return {"rate": rate, "stored": 0}
    return {"rate": rate, "events": n, "stored": len(delays),
            "p50_ms": round(delays[len(delays) // 2], 1), "p99_ms": round(delays[int(len(delays) * 0.99) - 1], 1)}


def run(events: int = 20_000, batch: int = 500, rate: float = 1000.0, latency_s: float = 5.0) -> dict[str, Any]:
    from gateway.relay.registry import Registry
    with tempfile.TemporaryDirectory(prefix="lb-bench-relay-") as tmp:
        root = Path(tmp)
        broker = _broker(root)
        try:
            key = DeviceKey.load_or_create(root / "gw")
            cfg = _relay_config(root, broker.port, batch)
            (root / "state").mkdir()
            Registry(root / "state" / "gateways.json").register("bench-gw", key.public.b64)
            payloads = _envelopes(key, events)
            asyncio.run(_run_relay(cfg, None, 30))               # the session and its subscription
            publish_s = _publish(broker.port, "linebridge/bench/bench-gw/events/scrap", payloads)
            elapsed, stored, quarantined = asyncio.run(_run_relay(cfg, events, 600))
            latency = asyncio.run(_latency(cfg, broker.port, key, rate, latency_s))
        finally:
            broker.stop()
        parsed = [json.loads(p) for p in payloads[:2000]]
        t0 = time.perf_counter()
        for env in parsed:
            assert verify(env, key.public) is None
        verify_us = (time.perf_counter() - t0) / len(parsed) * 1e6
    return {"events": events, "batch_size": batch, "stored": stored, "quarantined": quarantined,
            "seconds": round(elapsed, 3), "events_per_s": round(stored / elapsed, 1) if elapsed else None,
            "goal_events_per_s": 5000, "publish_events_per_s": round(events / publish_s, 1),
            "verify_us_per_event": round(verify_us, 1), "publish_to_stored": latency, "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0]}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="linebridge bench relay", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=500, help="the relay's batch_size")
    p.add_argument("--rate", type=float, default=1000.0, help="events/s of the latency phase")
    p.add_argument("--latency-seconds", type=float, default=5.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = run(args.events, args.batch, args.rate, args.latency_seconds)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0 if result["stored"] == args.events else 1
