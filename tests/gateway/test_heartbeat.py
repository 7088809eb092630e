"""The heartbeat over a real mosquitto: retained status content and interval, offline on a clean stop."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from gateway import config as config_mod
from gateway.heartbeat import SystemProbe
from gateway.signing import verify
from gateway.supervisor import Supervisor
from tests.drivers.mqtt.broker import Subscriber
from tests.gateway.test_mqtt_sink import make_event, until

STATUS = "linebridge/line-3/gw-hb/status"


def _config(port: int) -> config_mod.Config:
    return config_mod.parse(f"""
[gateway]
id = "gw-hb"
site = "line-3"

[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1:{port}"

[sinks.cloud]             # never reachable: its backlog grows
type = "mqtt"
url = "mqtt://127.0.0.1:1"
topic_prefix = "elsewhere"
retry_cap = 1

[heartbeat]
sink = "up"
interval = 0.5
""")


def test_the_status_is_retained_signed_complete_and_on_time_and_a_clean_stop_turns_it_offline(broker, tmp_path):
    cfg = _config(broker.port)
    arrivals: list[float] = []

    async def go() -> None:
        sup = Supervisor(cfg, tmp_path / "state")
        sup.store.append([sup.key.sign(make_event(i)) for i in range(4)])
        runner = asyncio.create_task(sup.run())
        with Subscriber(broker.port, STATUS) as sub:
            seen = 0
            deadline = time.monotonic() + 15
            while len(arrivals) < 4 and time.monotonic() < deadline:
                if len(sub.messages) > seen:
                    arrivals.extend([time.monotonic()] * (len(sub.messages) - seen))
                    seen = len(sub.messages)
                await asyncio.sleep(0.01)
            await until(lambda: sup.store.backlog("up") == 0, 10, "sink up to drain")
            await until(lambda: len(sub.messages) > seen, 5, "one more status after the drain")
            topic, payload, qos, retain = sub.messages[-1]
        status = json.loads(payload)
        sup.stop()
        await asyncio.wait_for(runner, 15)
        return status, sup

    status, sup = asyncio.run(go())
    gaps = [b - a for a, b in zip(arrivals[1:], arrivals[2:])]      # the first comes at connect
    assert all(0.3 <= g <= 1.5 for g in gaps), gaps
    assert status["schema"] == "linebridge.status/1" and status["state"] == "online"
    assert (status["gateway"], status["site"], status["interval_s"]) == ("gw-hb", "line-3", 0.5)
    assert status["version"] and status["uptime_s"] > 0
    assert status["backlog"] == {"up": 0, "cloud": 4}
    assert status["dead_letters"] == {"up": 0, "cloud": 0}
    assert status["oldest_unacked_age_s"] > 0          # the cloud sink still holds 2026-11-28 events
    assert status["sinks"]["cloud"]["state"] in ("disconnected", "connecting")
    assert "cannot connect" in status["sinks"]["cloud"]["last_error"]
    assert status["devices"] == {}
    system = status["system"]
    assert 0 <= system["cpu_percent"] <= 100 and system["memory"]["total_bytes"] > 0
    assert system["disk"]["path"] == str(tmp_path / "state") and system["disk"]["free_bytes"] > 0
    assert status["key"] == {"alg": "Ed25519", "kid": sup.key.kid, "public_key": sup.key.public.b64}
    assert verify(status, sup.key.public) is None

    with Subscriber(broker.port, STATUS) as late:           # retained: a newcomer sees the last word
        (topic, payload, qos, retain), = late.wait_for(1)
    offline = json.loads(payload)
    assert retain and offline["state"] == "offline" and offline["reason"] == "stopped"
    assert verify(offline, sup.key.public) is None


def test_the_system_probe_reads_cpu_memory_and_disk_from_proc_and_statvfs(tmp_path):
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "stat").write_text("cpu  100 0 100 800 0 0 0 0 0 0\n")
    (proc / "meminfo").write_text("MemTotal:       1000 kB\nMemFree: 100 kB\nMemAvailable:    250 kB\n")
    (proc / "self" / "status").write_text("VmRSS:\t  2048 kB\n")
    probe = SystemProbe(tmp_path, proc=proc)
    (proc / "stat").write_text("cpu  160 0 120 820 0 0 0 0 0 0\n")   # 80 busy of 100 ticks
    sample = probe.sample()
    assert sample["cpu_percent"] == 80.0
    assert sample["memory"] == {"total_bytes": 1024000, "available_bytes": 256000, "used_percent": 75.0}
    assert sample["process_rss_bytes"] == 2048 * 1024 and sample["disk"]["total_bytes"] > 0
