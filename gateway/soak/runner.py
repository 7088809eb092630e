"""`linebridge soak --minutes N [--seed S] --json`: the run, its figures and its verdict.

It owns the order of things: mount the tmpfs, start the broker, the Odoo
sandbox, the plants and the gateway, walk the seeded plan (chaos with kill -9
cycles and one fault at a time, then a long outage of Odoo and the broker, then
recovery), sample the store and the gateway's memory as it goes, wait for the
backlog to drain, and compare the ground truth with Odoo and with the broker.
It prints progress on stderr and, with `--json`, one JSON line on stdout; it
exits 0 only when Odoo shows nothing lost and nothing doubled.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.soak import audit, probe
from gateway.soak.garbage import GarbageProxy
from gateway.soak.options import add_arguments
from gateway.soak.procs import Broker, Gateway, Odoo, RetryRuns, SoakError, Tmpfs, end, free_port, spawn, \
    wait_port
from gateway.soak.schedule import Fault, Plan, plan

GATEWAY_ID = "soak-gw"
SITE = "soak"
SINK_TIMEOUT = 1.0
#: the outage gateway's memory is counted from this long after the outage (its first deliveries' step is over) ...
RSS_SETTLE = 20.0
#: ... over at least this long (a short run waits for it after the drain)
RSS_WINDOW = 30.0
TAGS = """
[devices.{dev}.tags.parts]
function = "holding"
address = 0
type = "uint32"

[devices.{dev}.tags.scrap]
function = "holding"
address = 2
type = "uint32"

[devices.{dev}.tags.alarm]
function = "holding"
address = 4
type = "uint16"

[devices.{dev}.tags.running]
function = "holding"
address = 5
type = "uint16"

[rules.{dev}_parts]
type = "counter"
device = "{dev}"
tag = "parts"
kind = "production"
width = 32
initial = "zero"

[rules.{dev}_scrap]
type = "counter"
device = "{dev}"
tag = "scrap"
kind = "scrap"
width = 32
initial = "zero"

[rules.{dev}_alarm]
type = "alarm"
device = "{dev}"
tag = "alarm"
downtime = true

[machines.{machine}]
work_center = "{machine}"
equipment = "{machine}"
"""


def gateway_config(devices: dict[str, tuple[str, int]], odoo_port: int, mqtt_port: int, poll: float,
                   map_mib: int) -> str:
    """The gateway's configuration: compressed time (short timeouts, millisecond retry caps, fast polls)."""
    text = f"""# written by `linebridge soak`: time is compressed, do not copy to a plant
[gateway]
id = "{GATEWAY_ID}"
site = "{SITE}"

[store]
map_size_mb = 64
max_map_size_mb = {map_mib}

[store.telemetry]
max_events = 5000000
max_mb = {map_mib * 3 // 4}

[sinks.odoo]
type = "odoo"
url = "http://127.0.0.1:{odoo_port}"
database = "sandbox"
login = "admin"
api_key = "admin"
protocol = "jsonrpc"
timeout = {SINK_TIMEOUT}
retry_cap = 0.001
rate = 10000.0
max_in_flight = 2
batch_size = 200
scrap_mode = "validate"   # the orders the soak adds for CNC-02.. have no components: scrap the finished part

[sinks.odoo.alarm_codes]
101 = {{ title = "Spindle overload", priority = "3" }}
102 = {{ title = "Coolant low", priority = "1" }}
103 = {{ title = "Door open", priority = "1" }}
104 = {{ title = "Tool breakage", priority = "2" }}
105 = {{ title = "Axis fault", priority = "3" }}

[sinks.mqtt]
type = "mqtt"
url = "mqtt://127.0.0.1:{mqtt_port}"
telemetry = true
rate = 10000.0
batch_size = 500
retry_cap = 0.004         # 2-4 ms: the Odoo sink's loop, which yields between attempts, gets the CPU
timeout = 2.0
keepalive = 10

[heartbeat]
sink = "mqtt"
interval = 2
"""
    for dev, (machine, port) in devices.items():
        text += f"""
[devices.{dev}]
type = "modbus_tcp"
host = "127.0.0.1"
port = {port}
unit_id = 1
poll_interval = {poll}
timeout = {SINK_TIMEOUT}
machine = "{machine}"
""" + TAGS.format(dev=dev, machine=machine)
    return text


class Soak:
    """One run: its peers, its plan, its counters."""

    def __init__(self, opts: argparse.Namespace, work: Path) -> None:
        self.opts = opts
        self.work = work
        self.seconds = opts.minutes * 60.0
        self.plan: Plan = plan(self.seconds, opts.seed, opts.kills, SINK_TIMEOUT)
        self.rng = random.Random(opts.seed ^ 0x5EED)
        self.tmpfs = Tmpfs(work / "state", opts.tmpfs_mib)
        self.runs = RetryRuns()
        self.odoo = Odoo(work, free_port())
        self.broker = Broker(work / "broker", free_port())
        self.machines = [f"CNC-{i:02d}" for i in range(1, opts.machines + 1)]
        self.plant_ports = {m: free_port() for m in self.machines}
        self.truth_path = work / "ground-truth.json"
        self.plants: subprocess.Popen | None = None
        self.proxy: GarbageProxy | None = None
        self.gateway: Gateway | None = None
        self.mqtt: audit.MqttAudit | None = None
        self.t0 = 0.0
        self.counts = {"kills": 0, "crashes": 0, "clock_steps": 0, "odoo_restarts": 0, "broker_restarts": 0,
                       "disk_full": 0, "garbage_windows": 0, "odoo_5xx": 0, "odoo_slow": 0, "odoo_down": 0}
        self.max_backlog = 0
        self.rss: list[tuple[float, int]] = []   # (t, RssAnon KiB) of the gateway that lives through the outage
        self.outage_pid: int | None = None
        self.phase = "chaos"
        self.outage_span = (0.0, 0.0)             # (start, end) of the outage, seconds into the run
        self.last_offset = 0
        self.starts = 0

    # -- helpers --------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.t0

    def say(self, text: str) -> None:
        print(f"soak [{self.now():7.1f}s] {text}", file=sys.stderr, flush=True)

    def faults(self, **settings: Any) -> None:
        try:
            httpx.post(f"http://127.0.0.1:{self.odoo.port}/sandbox/faults", json=settings, timeout=5)
        except httpx.HTTPError:
            pass  # Odoo is down: a restarted sandbox starts without faults anyway

    def start_gateway(self) -> None:
        assert self.gateway is not None
        offset = self.plan.offsets_h[self.starts % len(self.plan.offsets_h)]
        if offset != self.last_offset:
            self.counts["clock_steps"] += 1
        self.last_offset = offset
        self.gateway.start(offset)
        self.starts += 1

    def sample(self) -> probe.StoreFigures | None:
        figures = probe.look(self.tmpfs.path / "store")
        if figures is not None:
            self.max_backlog = max(self.max_backlog, figures.backlog)
        gw = self.gateway
        if gw is not None and gw.proc is not None and gw.proc.pid == self.outage_pid:
            kib = gw.rss_kib()
            if kib is not None:
                self.rss.append((self.now(), kib))
                with open(self.work / "rss.tsv", "a", encoding="utf-8") as out:  # the curve, to read after
                    out.write(f"{self.now():.1f}\t{self.phase}\t{kib}\t{figures.backlog if figures else ''}\n")
        return figures

    # -- faults -----------------------------------------------------------------------

    def begin(self, f: Fault) -> None:
        self.say(f"fault {f.kind} for {f.duration:.1f}s")
        if f.kind == "odoo_5xx":
            self.counts["odoo_5xx"] += 1
            self.faults(http_status=f.status)
        elif f.kind == "odoo_slow":
            self.counts["odoo_slow"] += 1
            self.faults(latency=f.latency)
        elif f.kind == "odoo_restart":
            # replies held back, then the sandbox stops while requests wait in it
            self.counts["odoo_restarts"] += 1
            self.faults(latency=f.latency)
            time.sleep(0.3)
            self.odoo.stop(signal.SIGKILL if self.rng.random() < 0.5 else signal.SIGTERM)
        elif f.kind == "odoo_down":
            self.counts["odoo_down"] += 1
            self.odoo.stop()
        elif f.kind == "broker_restart":
            self.counts["broker_restarts"] += 1
            self.broker.stop()
        elif f.kind == "disk_full":
            self.counts["disk_full"] += 1
            taken = self.tmpfs.fill()
            self.say(f"state filesystem full (it had {taken / 2**20:.0f} MiB free)")
        elif f.kind == "garbage":
            self.counts["garbage_windows"] += 1
            assert self.proxy is not None
            self.proxy.garbage.set()

    def finish(self, f: Fault) -> None:
        if f.kind in ("odoo_5xx", "odoo_slow"):
            self.faults()
        elif f.kind in ("odoo_restart", "odoo_down"):
            self.odoo.start()
        elif f.kind == "broker_restart":
            self.broker.start()
        elif f.kind == "disk_full":
            self.tmpfs.free()
        elif f.kind == "garbage":
            assert self.proxy is not None
            self.proxy.garbage.clear()

    # -- the run ---------------------------------------------------------------------

    def setup(self) -> None:
        self.tmpfs.mount()
        self.broker.start()
        self.mqtt = audit.MqttAudit(self.broker.port, f"linebridge/{SITE}/{GATEWAY_ID}", f"soak-audit-{self.opts.seed}")
        if not self.mqtt.connected.wait(15):
            raise SoakError("the MQTT auditor could not subscribe to the broker")
        self.odoo.start()
        audit.prepare_odoo(self.odoo.port, self.machines)
        args = ["gateway.soak.plants", "--ground-truth", str(self.truth_path), "--seed", str(self.opts.seed),
                "--duration", str(self.plan.plant_end), "--part-rate", str(self.opts.part_rate),
                "--alarm-every", "30"]
        for m, port in self.plant_ports.items():
            args += ["--machine", f"{m}={port}"]
        self.plants = spawn(args, self.work / "plants.log")
        for port in self.plant_ports.values():
            wait_port(port, self.plants, "the soak plants")
        first = self.machines[0]
        self.proxy = GarbageProxy(self.plant_ports[first], seed=self.opts.seed)
        devices = {f"m{i + 1:02d}": (m, self.proxy.port if m == first else self.plant_ports[m])
                   for i, m in enumerate(self.machines)}
        config = self.work / "gateway.toml"
        config.write_text(gateway_config(devices, self.odoo.port, self.broker.port, self.opts.poll,
                                         self.opts.tmpfs_mib * 7 // 8), encoding="utf-8")
        self.gateway = Gateway(config, self.tmpfs.path, self.work / "gateway.log", self.runs)

    def chaos(self) -> None:
        gw = self.gateway
        assert gw is not None
        self.start_gateway()
        faults = list(self.plan.faults)
        active: tuple[Fault, float] | None = None
        last_sample = 0.0
        wanted = self.opts.kills or 0
        # the chaos goes on past its plan (up to 60 % of the run) until the wanted kill -9 cycles are done:
        # how long a start takes depends on the machine's load
        while self.now() < self.plan.chaos_end or (self.counts["kills"] < wanted
                                                   and self.now() < 0.6 * self.seconds):
            t = self.now()
            if active is None and faults and t >= faults[0].at:
                f = faults.pop(0)
                self.begin(f)
                active = (f, self.now() + f.duration)
            elif active is not None and t >= active[1]:
                self.finish(active[0])
                active = None
            if not gw.alive:
                if gw.proc is not None and gw.proc.returncode not in (None, -signal.SIGKILL):
                    self.counts["crashes"] += 1
                    self.say(f"gateway exited by itself (code {gw.proc.returncode}); restarting")
                self.start_gateway()
            elif time.monotonic() - (gw.ready_at or gw.started_at + 30.0) >= self.plan.kill_after[
                    self.counts["kills"] % 10_000]:
                # killed at a random moment after it started its tasks (or when it hangs in its start)
                gw.kill9()
                self.counts["kills"] += 1
                self.start_gateway()
            if t - last_sample >= 2.0:
                self.sample()
                last_sample = t
            time.sleep(0.05)
        if active is not None:
            self.finish(active[0])
        self.say(f"chaos over: {self.counts['kills']} kill -9, {len(self.plan.faults)} faults")

    def outage(self) -> None:
        gw = self.gateway
        assert gw is not None
        if not gw.alive:
            self.start_gateway()
        self.outage_pid = gw.proc.pid if gw.proc else None
        self.odoo.stop()
        self.broker.stop()
        self.phase = "outage"
        outage_start = self.now()
        self.say("outage: Odoo and the broker down")
        last_print = last_sample = 0.0
        while self.now() < self.plan.outage_end:
            t = self.now()
            if not gw.alive:
                self.counts["crashes"] += 1
                self.say(f"gateway died during the outage (code {gw.proc.returncode if gw.proc else None})")
                self.start_gateway()
                self.outage_pid = gw.proc.pid if gw.proc else None
            if t - last_sample >= 2.0:
                figures = self.sample()
                last_sample = t
                if t - last_print >= 30:
                    last_print = t
                    self.say(f"outage: failed attempts in a row odoo={self.runs.run_of('odoo')} "
                             f"mqtt={self.runs.run_of('mqtt')}, backlog={figures.backlog if figures else '?'}")
            time.sleep(0.1)
        self.outage_span = (outage_start, self.now())   # its end: before the peers start again
        self.broker.start()
        self.odoo.start()
        self.phase = "recovery"
        self.say("outage over: Odoo and the broker back")

    def recover(self) -> tuple[float | None, bool]:
        """Wait for the plant to finish and everything it made to be delivered; (recovery_s, drained).

        `recovery_s` runs from the end of the last fault until every event stored
        before it has left the store (acknowledged by every sink that wants it).
        Drained: the plant is final, the gateway had five seconds to read the
        final counters, and every event stored until then has left the store.
        It returns no sooner than `RSS_SETTLE + RSS_WINDOW` after the outage, so
        the gateway's memory after it is sampled long enough to compare.
        """
        gw = self.gateway
        assert gw is not None
        fault_end = self.now()
        at_end = probe.look(self.tmpfs.path / "store")
        mark = at_end.last_seq if at_end else 0
        recovery: float | None = None
        # a drain that still moves is given time (up to half the run again); one that stalls for 120 s is not
        hard_deadline = self.now() + max(300.0, 0.5 * self.seconds)
        deadline = self.now() + max(150.0, 0.2 * self.seconds)
        moved_at, oldest_seen = self.now(), None
        final_at: float | None = None
        final_mark: int | None = None
        while self.now() < deadline or (self.now() < hard_deadline and self.now() - moved_at < 120.0):
            if not gw.alive:
                self.counts["crashes"] += 1
                self.say(f"gateway exited by itself (code {gw.proc.returncode if gw.proc else None}); restarting")
                self.start_gateway()
            figures = self.sample()
            if final_at is None and (_read_json(self.truth_path) or {}).get("final"):
                final_at = self.now()
                self.say("the plants stopped")
            if figures is not None:
                oldest = min((o for o in figures.oldest.values() if o is not None), default=None)
                if oldest != oldest_seen:
                    moved_at, oldest_seen = self.now(), oldest
                if recovery is None and figures.drained_through(mark):
                    recovery = self.now() - fault_end
                    self.say(f"the outage's backlog drained in {recovery:.1f}s")
                if final_at is not None and final_mark is None and self.now() - final_at >= 5.0:
                    final_mark = figures.last_seq
                if final_mark is not None and recovery is not None and figures.drained_through(final_mark) \
                        and self.now() >= self.outage_span[1] + RSS_SETTLE + RSS_WINDOW:
                    return recovery, True
            time.sleep(1.0)
        return recovery, False

    def verdict(self, recovery: float | None, drained: bool, started: float) -> dict[str, Any]:
        from gateway import config as config_mod
        from gateway.demo import odoo_summary
        assert self.gateway is not None and self.mqtt is not None
        figures = probe.look(self.tmpfs.path / "store")
        code = self.gateway.stop()
        truth = _read_json(self.truth_path) or {}
        odoo_view = asyncio.run(odoo_summary(config_mod.load(self.gateway.config)))
        units = audit.units(truth, odoo_view)
        # the subscriber has its last messages once nothing new came for two seconds
        last, quiet = -1, time.monotonic()
        while time.monotonic() - quiet < 2.0:
            n = self.mqtt.telemetry + len(self.mqtt.seen_ids) + self.mqtt.repeats
            if n != last:
                last, quiet = n, time.monotonic()
            time.sleep(0.2)
        rss_growth, rss_outage, rss_points = _rss_figures(self.rss, self.outage_span)
        result: dict[str, Any] = {
            "lost": units["lost"], "doubled": units["doubled"], "kills": self.counts["kills"],
            "events": figures.last_seq if figures else 0,
            "backlog_left": figures.held if figures else None,
            "failed_attempts_max": max(self.runs.longest.values(), default=0),
            "failed_attempts": dict(self.runs.longest), "retries_total": self.runs.total,
            "max_backlog": self.max_backlog,
            "recovery_s": round(recovery, 1) if recovery is not None else None,
            "rss_growth_mib": rss_growth, "rss_outage_growth_mib": rss_outage, "rss_mib": rss_points,
            "drained": drained, "gateway_exit": code, "gateway_error_lines": self.gateway.error_lines,
            "task_deaths": self.gateway.task_deaths,
            "parts": sum(m["parts"] for m in (truth.get("machines") or {}).values()),
            "machines": len(self.machines), "seed": self.opts.seed, "minutes": self.opts.minutes,
            "seconds": round(time.monotonic() - started, 1), "garbage_replies": self.proxy.garbage_replies
            if self.proxy else 0, **self.counts, **self.mqtt.compare(truth), "plan": self.plan.describe(),
        }
        if units["detail"]:
            result["odoo_mismatch"] = units["detail"]
        return result

    def teardown(self) -> None:
        if self.gateway is not None and self.gateway.alive:
            self.gateway.kill9()
        if self.mqtt is not None:
            self.mqtt.close()
        if self.proxy is not None:
            self.proxy.close()
        end(self.plants)
        self.odoo.stop()
        self.broker.stop()
        self.tmpfs.unmount()


def _rss_figures(rss: list[tuple[float, int]],
                 outage: tuple[float, float]) -> tuple[float | None, float | None, list[float] | None]:
    """(growth after warm-up, growth during the outage, [first, outage end, warm, last]) in MiB.

    The gateway that lives through the outage starts just before it and has
    delivered nothing yet; its first deliveries after the outage take a step of
    memory once (about 6 MiB within 5 s in the 30-minute run of docs/soak.md:
    the delivery paths' first use, one more thread and its malloc arena). So its
    growth is counted from `RSS_SETTLE` after the outage's end ("warm": the
    step is over, the drain of the outage's backlog runs at full speed) to its
    last sample, at least `RSS_WINDOW` later; the outage (the failed attempts and the backlog piling up) is
    measured apart, from 20 s into it to its end.
    """
    if not rss:
        return None, None, None
    mib = lambda kib: round(kib / 1024, 2)  # noqa: E731
    in_outage = [k for t, k in rss if outage[0] + 20.0 <= t <= outage[1]]
    after = [k for t, k in rss if outage[1] > 0 and t >= outage[1] + RSS_SETTLE]
    growth = mib(after[-1] - after[0]) if len(after) >= 2 else None
    outage_growth = mib(in_outage[-1] - in_outage[0]) if len(in_outage) >= 2 else None
    points = [mib(rss[0][1]), mib(in_outage[-1]) if in_outage else None, mib(after[0]) if after else None,
              mib(rss[-1][1])]
    return growth, outage_growth, points


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run(opts: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="linebridge-soak-", dir=opts.workdir))
    soak = Soak(opts, work)
    started = time.monotonic()
    try:
        soak.t0 = time.monotonic()
        soak.setup()
        soak.t0 = time.monotonic()  # the plan's clock starts with every peer up
        soak.say(f"work directory {work}; plan {soak.plan.describe()}")
        soak.chaos()
        soak.outage()
        recovery, drained = soak.recover()
        result = soak.verdict(recovery, drained, started)
    except SoakError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        soak.teardown()
        return 2
    except BaseException:
        soak.teardown()
        raise
    soak.teardown()
    ok = result["lost"] == 0 and result["doubled"] == 0 and result["drained"]
    result["ok"] = ok
    if opts.json:
        print(json.dumps(result, sort_keys=True), flush=True)
    else:
        for key in sorted(result):
            print(f"{key}: {result[key]}")
    soak.say(f"{'OK' if ok else 'FAILED'}: lost={result['lost']} doubled={result['doubled']}; logs in {work}")
    if ok and not opts.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="linebridge soak")
    add_arguments(p)
    return run(p.parse_args(argv))
