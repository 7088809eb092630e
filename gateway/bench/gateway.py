"""`linebridge bench gateway`: the whole gateway as its own process, Modbus → rules → store → MQTT.

This module owns the whole-process benchmark. It starts `devices` pymodbus TCP
servers (a separate process), a real mosquitto on a loopback port and
`linebridge run` as its own process with one Modbus TCP device per server
(`registers` uint16 holding tags each, polled every `period`) and an MQTT sink
publishing telemetry with QoS 1. A subscriber in this process counts what
reaches the broker. It reports, for the gateway process (all its threads):

- `values_per_s`, `cpu_s_per_1000_values`, `rss_mib`;
- `bytes_per_value`: telemetry payload bytes received at the broker per value;
- `p50_ms`, `p99_ms`: newest sample's read time → the broker delivering it;
- `start_to_first_s`: process start → first telemetry at the broker (the state
  directory already holds the device key, as after the first boot).

The baseline, in the same run, is the bare reads: a pymodbus client process
doing the same requests at the same period (`--per-tag`: one request per tag)
and nothing else; `overhead_ratio` is the gateway's CPU over the bare reads'.

A second baseline, the floor, is the least a gateway keeping the same promises
can do per poll, written straight in one asyncio process: the same reads, one
record of the poll's values in JSON, an Ed25519 signature over it, a synced
LMDB put, a QoS 1 publish awaited until the broker's PUBACK (paho's network
thread, as the gateway), a synced LMDB delete. `floor_ratio` is the gateway's
CPU over the floor's: what the gateway's own structure (rules, supervision,
status figures, group commit, journal) costs beyond its promises.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.bench.modbus import _Servers

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
_TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _Broker:
    """mosquitto on a loopback port, stopped by pid."""

    def __init__(self, workdir: Path, extra: str = "", bench: str = "gateway") -> None:
        if not os.access(MOSQUITTO, os.X_OK):
            raise RuntimeError(f"bench {bench} needs mosquitto ({MOSQUITTO} not found): apt-get install mosquitto")
        self.port = _free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within 10 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Counter:
    """Subscribes to the gateway's telemetry and counts values, bytes and delays."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        self.values = self.bytes = self.messages = 0
        self.first_at: float | None = None
        self.delays: list[float] = []
        self.counting = False
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-counter")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe("#", qos=1)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        now = time.time()
        if "/telemetry/" not in msg.topic:
            return
        try:
            body = json.loads(msg.payload)
            data = body["data"]
            samples = data["samples"] if "samples" in data else [v for v in data.get("values", ()) if v is not None]
            newest = datetime.fromisoformat(body["ts"].replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            if self.first_at is None:
                self.first_at = now
            if self.counting:   # every byte at the broker counts, tag sets included
                self.messages += 1
                self.values += len(samples)
                self.bytes += len(msg.payload)
                self.delays.append(now - newest)

    def snapshot(self) -> tuple[int, int, int]:
        with self._lock:
            return self.values, self.bytes, self.messages

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _config(ports: list[int], registers: int, period: float, per_tag: bool, broker: int) -> str:
    lines = ['[gateway]', 'id = "bench-gw"', 'site = "bench"', '']
    for i, port in enumerate(ports):
        lines += [f"[devices.dev{i}]", 'type = "modbus_tcp"', 'host = "127.0.0.1"', f"port = {port}",
                  "unit_id = 1", f"poll_interval = {period}", "timeout = 2.0"]
        if per_tag:
            lines.append("max_registers = 1")
        lines.append("")
        for r in range(registers):
            lines += [f"[devices.dev{i}.tags.r{r}]", 'function = "holding"', f"address = {r}", 'type = "uint16"', ""]
    lines += ["[sinks.upstream]", 'type = "mqtt"', f'url = "mqtt://127.0.0.1:{broker}"', "qos = 1",
              "telemetry = true", ""]
    return "\n".join(lines)


def _bare_main() -> None:
    """Child process: the same Modbus requests as the gateway, nothing else; prints its CPU seconds."""
    ports, registers, period, per_tag, seconds = (json.loads(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]),
                                                  sys.argv[4] == "1", float(sys.argv[5]))
    from pymodbus.client import AsyncModbusTcpClient

    async def device(port: int, stop: float) -> int:
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2)
        await client.connect()
        reads = 0
        due = time.monotonic()
        while time.monotonic() < stop:
            if per_tag:
                for r in range(registers):
                    await client.read_holding_registers(r, count=1, device_id=1)
            else:
                for start in range(0, registers, 125):
                    await client.read_holding_registers(start, count=min(125, registers - start), device_id=1)
            reads += registers
            due += period
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        client.close()
        return reads

    async def go() -> int:
        stop = time.monotonic() + seconds
        return sum(await asyncio.gather(*(device(p, stop) for p in ports)))

    t0, c0 = time.monotonic(), time.process_time()
    values = asyncio.run(go())
    print(json.dumps({"cpu_s": time.process_time() - c0, "values": values, "wall_s": time.monotonic() - t0}))


def _floor_main() -> None:
    """Child process: the bare reads plus the least durable, signed, acknowledged delivery; prints its CPU."""
    ports, registers, period, per_tag, seconds = (json.loads(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]),
                                                  sys.argv[4] == "1", float(sys.argv[5]))
    broker, workdir = int(sys.argv[6]), sys.argv[7]
    import lmdb
    import paho.mqtt.client as mqtt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from pymodbus.client import AsyncModbusTcpClient

    key = Ed25519PrivateKey.generate()
    env = lmdb.open(workdir, map_size=1 << 28, sync=True, metasync=True)

    async def go() -> int:
        loop = asyncio.get_running_loop()
        acks: dict[int, asyncio.Future[None]] = {}
        early: set[int] = set()          # PUBACKs that came before their future was registered
        lock = threading.Lock()

        def on_publish(_c: Any, _u: Any, mid: int, *_rest: Any) -> None:
            with lock:
                fut = acks.pop(mid, None)
                if fut is None:
                    early.add(mid)
            if fut is not None:
                loop.call_soon_threadsafe(fut.set_result, None)

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-floor")
        client.on_publish = on_publish
        client.connect("127.0.0.1", broker)
        client.loop_start()
        stop = time.monotonic() + seconds
        seq = 0

        async def device(port: int) -> int:
            nonlocal seq
            modbus = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2)
            await modbus.connect()
            reads, due = 0, time.monotonic()
            while time.monotonic() < stop:
                values: list[int] = []
                if per_tag:
                    for r in range(registers):
                        values += (await modbus.read_holding_registers(r, count=1, device_id=1)).registers
                else:
                    for start in range(0, registers, 125):
                        values += (await modbus.read_holding_registers(
                            start, count=min(125, registers - start), device_id=1)).registers
                seq += 1
                body = json.dumps({"ts": time.time(), "seq": seq, "values": values}, separators=(",", ":")).encode()
                record = body + key.sign(body)
                k = seq.to_bytes(8, "big")
                with env.begin(write=True) as txn:
                    txn.put(k, record)
                fut = loop.create_future()
                mid = client.publish("bench/floor", record, qos=1).mid
                with lock:
                    if mid in early:
                        early.discard(mid)
                        fut.set_result(None)
                    else:
                        acks[mid] = fut
                await fut
                with env.begin(write=True) as txn:
                    txn.delete(k)
                reads += registers
                due += period
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            modbus.close()
            return reads

        try:
            return sum(await asyncio.gather(*(device(p) for p in ports)))
        finally:
            client.loop_stop()
            client.disconnect()

    t0, c0 = time.monotonic(), time.process_time()
    values = asyncio.run(go())
    print(json.dumps({"cpu_s": time.process_time() - c0, "values": values, "wall_s": time.monotonic() - t0}))


def _child(main: str, ports: list[int], registers: int, period: float, per_tag: bool, seconds: float,
           *extra: str) -> dict[str, float]:
    code = f"from gateway.bench.gateway import {main}; {main}()"
    out = subprocess.run([sys.executable, "-c", code, json.dumps(ports), str(registers), str(period),
                          "1" if per_tag else "0", str(seconds), *extra], capture_output=True, text=True,
                         timeout=seconds + 60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _bare(ports: list[int], registers: int, period: float, per_tag: bool, seconds: float) -> dict[str, float]:
    return _child("_bare_main", ports, registers, period, per_tag, seconds)


def run(devices: int = 1, registers: int = 100, period: float = 0.1, seconds: float = 30.0,
        per_tag: bool = False, warmup: float = 3.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="linebridge-bench-") as tmp, _Servers(devices, registers) as servers:
        root = Path(tmp)
        broker = _Broker(root)
        counter = _Counter(broker.port)
        cfg = root / "bench.toml"
        cfg.write_text(_config(servers.ports, registers, period, per_tag, broker.port))
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # the device key is made once, at install or on the first boot (the image does it then), not at
        # each start: start_to_first_s is an ordinary start's
        from gateway.signing import DeviceKey
        DeviceKey.load_or_create(root / "state")
        started = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(cfg),
                                 "--state-dir", str(root / "state")], stdout=subprocess.DEVNULL,
                                stderr=open(root / "gateway.log", "wb"), env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while counter.first_at is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the gateway sent no telemetry: " +
                                       (root / "gateway.log").read_text(errors="replace")[-2000:])
                time.sleep(0.01)
            start_to_first = counter.first_at - started
            time.sleep(warmup)
            counter.counting = True
            cpu0, t0 = _cpu_s(proc.pid), time.monotonic()
            time.sleep(seconds)
            cpu1, t1 = _cpu_s(proc.pid), time.monotonic()
            counter.counting = False
            values, nbytes, messages = counter.snapshot()
            rss = _rss_mib(proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            counter.stop()
            try:
                floor = _child("_floor_main", servers.ports, registers, period, per_tag, seconds,
                               str(broker.port), str(root / "floor"))
            finally:
                broker.stop()
        bare = _bare(servers.ports, registers, period, per_tag, seconds)
    cpu = cpu1 - cpu0
    delays = sorted(counter.delays) or [0.0]
    per_k = 1000 * cpu / values if values else None
    bare_per_k = 1000 * bare["cpu_s"] / bare["values"] if bare["values"] else None
    floor_per_k = 1000 * floor["cpu_s"] / floor["values"] if floor["values"] else None
    return {
        "devices": devices, "registers": registers, "period_s": period, "seconds": seconds, "per_tag": per_tag,
        "values_per_s": round(values / (t1 - t0), 1),
        "expected_values_per_s": round(devices * registers / period, 1),
        "cpu_s_per_1000_values": round(per_k, 5) if per_k is not None else None,
        "cpu_s_per_60s": round(60 * cpu / (t1 - t0), 2),
        "bytes_per_value": round(nbytes / values, 1) if values else None,
        "messages": messages,
        "p50_ms": round(1000 * statistics.median(delays), 1),
        "p99_ms": round(1000 * delays[min(len(delays) - 1, int(0.99 * len(delays)))], 1),
        "rss_mib": round(rss, 1),
        "start_to_first_s": round(start_to_first, 2),
        "bare_cpu_s_per_1000_values": round(bare_per_k, 5) if bare_per_k is not None else None,
        "bare_values_per_s": round(bare["values"] / bare["wall_s"], 1),
        "overhead_ratio": round(per_k / bare_per_k, 2) if per_k and bare_per_k else None,
        "floor_cpu_s_per_1000_values": round(floor_per_k, 5) if floor_per_k is not None else None,
        "floor_cpu_s_per_60s": round(60 * floor["cpu_s"] / floor["wall_s"], 2),
        "floor_ratio": round(per_k / floor_per_k, 2) if per_k and floor_per_k else None,
        "cpus": os.cpu_count(),
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="linebridge bench gateway",
                                description="the whole gateway process against bare Modbus reads, same run")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--registers", type=int, default=100, help="uint16 holding registers (tags) per device")
    p.add_argument("--period", type=float, default=0.1, help="poll interval, seconds")
    p.add_argument("--seconds", type=float, default=30.0, help="measured seconds (after a warm-up)")
    p.add_argument("--per-tag", action="store_true", help="one Modbus request per tag (max_registers = 1)")
    args = p.parse_args(argv)
    r = run(args.devices, args.registers, args.period, args.seconds, args.per_tag)
    if args.json:
        print(json.dumps(r, sort_keys=True))
        return 0
    print(f"whole gateway: {r['values_per_s']} values/s (of {r['expected_values_per_s']}), "
          f"{r['cpu_s_per_1000_values']} CPU s per 1000 values ({r['cpu_s_per_60s']} s per 60 s), "
          f"RSS {r['rss_mib']} MiB")
    print(f"at the broker: {r['bytes_per_value']} bytes per value; read → broker p50 {r['p50_ms']} ms, "
          f"p99 {r['p99_ms']} ms; first telemetry {r['start_to_first_s']} s after start")
    print(f"bare reads: {r['bare_cpu_s_per_1000_values']} CPU s per 1000 values; "
          f"overhead ratio {r['overhead_ratio']}x")
    print(f"floor (the same reads, signed, synced, published with QoS 1, acknowledged, in one plain loop): "
          f"{r['floor_cpu_s_per_1000_values']} CPU s per 1000 values ({r['floor_cpu_s_per_60s']} s per 60 s); "
          f"gateway / floor {r['floor_ratio']}x")
    return 0
