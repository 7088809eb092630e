"""The heartbeat: a retained, signed status message on `<prefix>/status`, and its last will.

It owns what the plant's monitoring sees of the gateway over MQTT: every
`interval` seconds (and at once after each reconnect) a retained
`linebridge.status/1` message with the state (`online`), environment, version, uptime,
backlog and dead letters per sink, the age of the oldest unacknowledged event,
per-driver health, each sink's service levels per event kind, the supervised tasks (state and restarts), the box's CPU, memory and disk (from /proc and statvfs), and
the gateway's public key and key id, the events each sink refused as
tampered, each MQTT client certificate's expiry (`certificates`: `not_after`,
`days_left`, `expiring` within 30 days), and the journal's latest signed
checkpoint (`journal`, see `gateway.checkpoint`). The last will, set on the same MQTT
connection, turns the same retained topic to `offline` when the gateway dies;
on a clean stop the gateway publishes that offline status itself before it
disconnects. Status messages are signed like events. With each status goes,
retained, each machine's running shift's OEE so far (`linebridge.oee/1`,
signed) on `<prefix>/oee/<machine>/running`. It does not own the
connection (the MQTT sink's link) nor the figures (the supervisor and store).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from gateway import __version__, checkpoint
from gateway.config import GatewayConfig, HeartbeatConfig
from gateway.errors import DeliveryError
from gateway.events import iso_utc
from gateway.signing import ALG, DeviceKey
from gateway.sinks.common import wait_any
from store.queue import Store

if TYPE_CHECKING:  # paho is imported by the MQTT link, when one is configured
    from gateway.sinks.mqtt.link import MqttLink, Will

log = logging.getLogger("linebridge.heartbeat")

SCHEMA = "linebridge.status/1"
OEE_SCHEMA = "linebridge.oee/1"


class SystemProbe:
    """CPU (busy share since the previous probe), memory and disk of the box; no dependencies."""

    def __init__(self, disk_path: Path, proc: Path = Path("/proc")) -> None:
        self.disk_path = disk_path
        self.proc = proc
        self._cpu = self._cpu_times()

    def _cpu_times(self) -> tuple[int, int] | None:
        try:
            fields = (self.proc / "stat").read_text().splitlines()[0].split()
        except (OSError, IndexError):
            return None
        values = [int(v) for v in fields[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values[:8]), idle

    def sample(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        now = self._cpu_times()
        if now and self._cpu and now[0] > self._cpu[0]:
            total, idle = now[0] - self._cpu[0], now[1] - self._cpu[1]
            out["cpu_percent"] = round(100.0 * (total - idle) / total, 1)
        else:
            out["cpu_percent"] = None
        self._cpu = now or self._cpu
        out["cpu_count"] = os.cpu_count()
        try:
            out["load_1m"] = round(os.getloadavg()[0], 2)
        except OSError:
            out["load_1m"] = None
        mem: dict[str, int] = {}
        try:
            for line in (self.proc / "meminfo").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    mem[key] = int(rest.split()[0]) * 1024
        except (OSError, ValueError):
            pass
        if "MemTotal" in mem and "MemAvailable" in mem:
            out["memory"] = {"total_bytes": mem["MemTotal"], "available_bytes": mem["MemAvailable"],
                             "used_percent": round(100.0 * (1 - mem["MemAvailable"] / mem["MemTotal"]), 1)}
        try:
            rss = next(int(line.split()[1]) * 1024 for line in (self.proc / "self" / "status").read_text()
                       .splitlines() if line.startswith("VmRSS:"))
            out["process_rss_bytes"] = rss
        except (OSError, StopIteration, ValueError, IndexError):
            pass
        try:
            st = os.statvfs(self.disk_path)
            total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
            out["disk"] = {"path": str(self.disk_path), "total_bytes": total, "free_bytes": free,
                           "used_percent": round(100.0 * (1 - free / total), 1) if total else None}
        except OSError:
            pass
        return out


class Heartbeat:
    """Publishes the gateway's status on one MQTT sink's connection."""

    def __init__(self, cfg: HeartbeatConfig, gateway: GatewayConfig, topic_prefix: str, link: MqttLink,
                 key: DeviceKey, store: Store, status: Callable[[], dict[str, Any]],
                 state_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.gateway = gateway
        self.topic = f"{topic_prefix}/status"
        self.link = link
        self.key = key
        self.store = store
        self.status = status
        self.clock = clock
        self.started = clock()
        self.probe = SystemProbe(Path(state_dir))
        self.sent = 0
        self.last_error: str | None = None
        #: each machine's running shift's OEE record by machine (`Supervisor.oee_live`), or None
        self.oee: Callable[[float], dict[str, dict[str, Any]]] | None = None

    def _base(self, state: str) -> dict[str, Any]:
        return {"schema": SCHEMA, "state": state, "gateway": self.gateway.id, "site": self.gateway.site,
                "environment": self.gateway.environment, "version": __version__, "ts": iso_utc(self.clock()),
                "key": {"alg": ALG, "kid": self.key.kid, "public_key": self.key.public.b64}}

    def offline(self, reason: str) -> bytes:
        """The signed offline status: `reason` is `connection lost` (the will) or `stopped`."""
        body = self._base("offline") | {"reason": reason}
        if reason == "stopped":
            body["uptime_s"] = round(self.clock() - self.started, 1)
        return _wire(self.key.sign(body))

    def will(self) -> Will:
        from gateway.sinks.mqtt.link import Will
        return Will(self.topic, self.offline("connection lost"), qos=1, retain=True)

    def snapshot(self) -> dict[str, Any]:
        """The online status, signed."""
        st = self.status()
        stats = self.store.stats()
        sinks = stats["sinks"]
        body = self._base("online") | {
            "interval_s": self.cfg.interval,
            "uptime_s": round(self.clock() - self.started, 1),
            "backlog": {n: s["backlog"] for n, s in st["sinks"].items()},
            "dead_letters": {n: sinks.get(n, {}).get("dead_letters", 0) for n in st["sinks"]},
            "oldest_unacked_age_s": stats["classes"]["business"]["oldest_age_s"],
            "oldest_unacked_telemetry_age_s": stats["classes"]["telemetry"]["oldest_age_s"],
            "sinks": {n: {k: s.get(k) for k in ("state", "delivered", "dead_lettered", "retries",
                                                "last_error", "last_delivery")}
                      for n, s in st["sinks"].items()},
            "devices": st["devices"],
            "tasks": st.get("tasks", {}),  # each supervised task: state, restarts, last error
            "intake": {k: st.get(k, 0) for k in ("read", "bad_samples", "events", "stored", "refused",
                                                   "implausible")},
            "store": {"last_seq": stats["last_seq"], "map_used_bytes": stats["map_used"],
                      "map_size_bytes": stats["map_size"]},
            "system": self.probe.sample(),
            "tampered": {n: s.get("tampered", 0) for n, s in st["sinks"].items()},
            # per sink and event kind: delay from source time to acknowledgement (p50, p95, max over
            # the latest acknowledgements) and the share within the kind's [service_levels] target
            "service_levels": {n: s.get("service_levels", {}) for n, s in st["sinks"].items()},
            # per MQTT sink with a client certificate: not_after, days_left, expiring (within 30 days)
            "certificates": st.get("certificates", {}),
            "journal": checkpoint.make(self.store.journal_head(), self.key, self.gateway.id, self.clock()),
        }
        return self.key.sign(body)

    async def publish_status(self) -> None:
        body = await asyncio.to_thread(self.snapshot)
        await asyncio.wait_for(self.link.publish(self.topic, _wire(body), qos=1, retain=True),
                               self.link.cfg.timeout)
        self.sent += 1
        log.debug("event=heartbeat topic=%s backlog=%s", self.topic, body["backlog"])
        if self.oee is not None:
            await self.publish_oee(self.oee(time.time()))

    async def publish_oee(self, running: dict[str, dict[str, Any]]) -> None:
        """Each machine's running shift so far, retained and signed, beside the status."""
        base = self.topic.removesuffix("/status")
        sent = []
        for machine, record in running.items():
            body = self.key.sign({"schema": OEE_SCHEMA, "gateway": self.gateway.id, "site": self.gateway.site,
                                  "environment": self.gateway.environment, "ts": iso_utc(self.clock()),
                                  **record})
            level = "".join("_" if ch in "+#/\x00" else ch for ch in machine) or "_"
            sent.append(self.link.publish(f"{base}/oee/{level}/running", _wire(body), qos=1, retain=True))
        if sent:
            await asyncio.wait_for(asyncio.gather(*sent), self.link.cfg.timeout)

    async def run(self, stop: asyncio.Event) -> None:
        """Every interval while connected, and at once after each (re)connect, until `stop`."""
        seen_connects = 0
        next_at = 0.0
        while not stop.is_set():
            if not self.link.connected.is_set():
                await wait_any(self.link.connected, stop, timeout=1.0)
                continue
            now = time.monotonic()
            if self.link.connects != seen_connects or now >= next_at:
                seen_connects = self.link.connects
                next_at = now + self.cfg.interval
                try:
                    await self.publish_status()
                    self.last_error = None
                except (DeliveryError, asyncio.TimeoutError) as exc:
                    self.last_error = str(exc) or "no PUBACK in time"
                    log.warning("event=heartbeat_failed topic=%s error=%r", self.topic, self.last_error)
            await wait_any(stop, timeout=max(0.05, min(next_at - time.monotonic(), 1.0)))

    async def publish_offline(self, timeout: float = 3.0) -> bool:
        """On a clean stop: the retained offline status, before the link disconnects."""
        if not self.link.connected.is_set():
            return False
        try:
            await asyncio.wait_for(self.link.publish(self.topic, self.offline("stopped"), qos=1, retain=True),
                                   timeout)
        except (DeliveryError, asyncio.TimeoutError) as exc:
            log.warning("event=heartbeat_offline_failed topic=%s error=%r", self.topic, str(exc))
            return False
        log.info("event=heartbeat_offline topic=%s", self.topic)
        return True


def _wire(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
