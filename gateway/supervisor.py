"""The supervisor: builds the topology from a validated config, runs it, changes it live, stops it cleanly.

It owns the tasks of the gateway process: one intake task per device (driver
-> rules -> sign -> store), one worker per sink, one connection per MQTT sink,
the heartbeat and the store's committer, all run by `self.tasks`
(`gateway.tasks.Tasks`, which the web UI's server joins too): a task that dies
is logged with its traceback, counted and restarted with capped, jittered
backoff; it never stops another device or a sink. It loads (or, on the first
start, makes) the device key that signs every event. `apply()`
puts a new configuration in force while it runs (what changes is worked out
by `gateway.topology`): only the devices and sinks it touches are stopped,
the way `stop()` stops them, and started again; queued events stay in the
store, behind each sink's cursor. `stop()` stops the drivers first, then lets
each sink finish the batch it has in flight, then the heartbeat publishes the
offline status, then the MQTT connections close cleanly, all within deadlines.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Coroutine

from drivers.base import Driver
from gateway import __version__
from gateway import topology
from gateway.config import Config, LabelSinkConfig, MqttSinkConfig, SinkConfig
from gateway.credentials import certificates, use_fingerprint_key
from gateway.context import ContextStore, MachineContext, context_key
from gateway.heartbeat import Heartbeat
from gateway.pipeline import DevicePipeline, IntakeStats
from gateway.oee import ideal_cycles
from gateway.board import MachineBoard
from gateway.summary import ShiftTallies, ShiftTally, summary_key
from gateway.tasks import Tasks
from gateway.rules.build import build as build_rule
from gateway.signing import DeviceKey
from store.committer import GroupCommitter
from store.queue import Quota, Store, StoreOptions

if TYPE_CHECKING:  # each sink's module (paho, httpx) is imported when a sink of its kind is built
    from gateway.sinks.mqtt import MqttLink, MqttSink
    from gateway.sinks.labels.sink import LabelSink
    from gateway.sinks.odoo import OdooSink

log = logging.getLogger("linebridge.supervisor")

#: how long each kind of task may take to finish once asked to stop, before it is cancelled
DEVICE_STOP_S, SINK_STOP_S, LINK_STOP_S, COMMITTER_STOP_S = 3.0, 6.0, 3.0, 10.0
#: the committer's task name (the others: `device:NAME`, `sink:NAME`, `link:NAME`, `heartbeat`)
COMMITTER = "store:committer"


class DriverState:
    """A driver's private slice of the store's state database (see drivers.base.StateStore)."""

    def __init__(self, store: Store, driver: str) -> None:
        self._store = store
        self._prefix = f"driver/{driver}/"

    def get(self, key: str) -> bytes | None:
        return self._store.get_state(self._prefix + key)

    def put(self, key: str, value: bytes) -> None:
        self._store.put_state(self._prefix + key, value)


def default_state_dir() -> Path:
    """`/var/lib/linebridge` for root, else `$XDG_STATE_HOME/linebridge` (~/.local/state)."""
    if os.geteuid() == 0:
        return Path("/var/lib/linebridge")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "linebridge"


def routes(config: Config) -> dict[str, set[str]]:
    """The store's routing table: the classes each sink of `config` reads."""
    return {n: (c.classes if isinstance(c, MqttSinkConfig) else {"business"}) for n, c in config.sinks.items()}


class WakeAll:
    """What the pipelines set after an append: wakes every sink (each has its own event)."""

    def __init__(self) -> None:
        self.events: list[asyncio.Event] = []

    def set(self) -> None:
        for event in self.events:
            event.set()


class Supervisor:
    """Owns the store, the drivers, the pipelines and the sinks of one gateway."""

    def __init__(self, config: Config, state_dir: Path) -> None:
        #: the configuration files under the last one, when `run` was given layers (the console
        #: validates its edits of the last file merged over them)
        self.config_layers: list[Path] = []
        #: every configuration file, in order (set by `linebridge run` through `watch_credentials`): the
        #: Odoo sinks watch where their API key is kept and take a rotated one without a restart
        self.config_paths: list[Path] = []
        self.config = config
        self.state_dir = Path(state_dir)
        sc = config.store
        options = StoreOptions(
            map_size=sc.map_size_mb * 2**20, max_map_size=sc.max_map_size_mb * 2**20,
            quotas={"business": Quota(sc.business_max_events, sc.business_max_mb * 2**20),
                    "telemetry": Quota(sc.telemetry_max_events, sc.telemetry_max_mb * 2**20)},
            dedupe_ttl=sc.dedupe_ttl_hours * 3600.0, journal_keep=sc.journal_keep)
        self.key = DeviceKey.load_or_create(self.state_dir)
        use_fingerprint_key(self.key.fingerprint_key())   # secrets in logs and pages, keyed by this device
        options.journal_key = self.key.journal_key()
        self.store = Store(self.state_dir / "store", sinks=routes(config), options=options)
        self.committer = GroupCommitter(self.store)
        #: every long-lived task of the process: restarted when it dies, counted, watched (sd_notify)
        self.tasks = Tasks(window=config.gateway.restart_window_s)
        self.wake = WakeAll()
        self.intake = IntakeStats()
        machines = {spec.machine or name for name, spec in config.devices.items()}
        #: operator, lot and work order per machine, shared by every device of that machine
        self.context = ContextStore.load(self.store.get_state, sorted(machines))
        #: each machine's good parts and scrap in the running shift, shared the same way
        self.tallies = (ShiftTallies(config.shifts, ideal_cycles(config), self.store.get_state)
                        if config.shifts else None)
        #: each machine's parts, scrap and rate since the start (the console's overview)
        self.board = MachineBoard()
        self.drivers: dict[str, Driver] = {}
        self.pipelines: dict[str, DevicePipeline] = {}
        for name in config.devices:
            self.drivers[name], self.pipelines[name] = self._build_device(name, config, self.tallies)
        self.started = time.time()
        self.links: dict[str, MqttLink] = {}
        self.sinks: dict[str, OdooSink | MqttSink | LabelSink] = {}
        for name, cfg in config.sinks.items():
            self.sinks[name], link = self._build_sink(cfg)
            if link is not None:
                self.links[name] = link
        self.heartbeat = self._build_heartbeat(config, self.links)
        self.wake.events = [s.wake for s in self.sinks.values()]
        #: set once every driver, sink and link task has been started (sd_notify READY waits for it)
        self.ready = asyncio.Event()
        #: the loop `run()` runs on: other threads hand `apply()` to it (asyncio.run_coroutine_threadsafe)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop_intake = asyncio.Event()
        #: set by `linebridge run`: how this process stops itself when a restart is asked for (None:
        #: the host runs the supervisor some other way, e.g. the demo, and cannot restart it)
        self.on_restart: Callable[[], None] | None = None
        #: who asked for a restart; `linebridge run` starts the process again after a clean stop
        self.restart_requested_by: str | None = None
        self._apply_lock = asyncio.Lock()

    # -- building ----------------------------------------------------------------------

    def _build_device(self, name: str, config: Config,
                      tallies: ShiftTallies | None) -> tuple[Driver, DevicePipeline]:
        spec = config.devices[name]
        driver = spec.driver(name, spec.config)
        driver.state = DriverState(self.store, name)
        if hasattr(driver, "pki_root"):  # OPC-UA: generated client certificates live with the state
            driver.pki_root = self.state_dir / "pki"
        rules = [build_rule(r, config.gateway.id, spec.machine or name)
                 for r in config.rules.values() if r.device == name]
        pipeline = DevicePipeline(config, driver, rules, self.committer, self.wake, self.intake,
                                  signer=self.key, context=self.context, tallies=tallies, board=self.board)
        return driver, pipeline

    def _build_sink(self, cfg: SinkConfig) -> tuple[OdooSink | MqttSink | LabelSink, MqttLink | None]:
        sink: OdooSink | MqttSink | LabelSink
        link: MqttLink | None = None
        if isinstance(cfg, MqttSinkConfig):
            from gateway.sinks.mqtt import MqttLink, MqttSink
            link = MqttLink(cfg)
            sink = MqttSink(cfg, self.store, asyncio.Event(), link, verify=self.key.public)
        elif isinstance(cfg, LabelSinkConfig):
            from gateway.sinks.labels.sink import LabelSink
            sink = LabelSink(cfg, self.store, asyncio.Event(), verify=self.key.public)
        else:
            from gateway.sinks.odoo import OdooSink
            sink = OdooSink(cfg, self.store, asyncio.Event(), machines=lambda: self.config.machines,
                            verify=self.key.public)
        sink.stats.levels.configure(self.config.service_levels)
        self._watch_key(sink)
        if link is not None:
            self._watch_password(link)
        return sink, link

    def watch_credentials(self, paths: list[Path]) -> None:
        """Let every Odoo sink, now and after an apply, pick up a rotated API key from `paths`' sources."""
        self.config_paths = [Path(p) for p in paths]
        for sink in self.sinks.values():
            self._watch_key(sink)
        for link in self.links.values():
            self._watch_password(link)

    def _watch_password(self, link: Any) -> None:
        """An MQTT password kept in a file or the TOML: a changed one is used at the link's next connect."""
        if self.config_paths and link.cfg.password is not None:
            from gateway.credentials import SecretWatch
            link.password_watch = SecretWatch(self.config_paths, link.name, "password", link.cfg.password)

    def _watch_key(self, sink: Any) -> None:
        from gateway.config import OdooSinkConfig
        if self.config_paths and isinstance(sink.cfg, OdooSinkConfig) and hasattr(sink, "key_watch"):
            from gateway.credentials import SecretWatch
            sink.key_watch = SecretWatch(self.config_paths, sink.name, "api_key", sink.cfg.api_key)
            sink.on_rotated = self._rotated

    def _rotated(self, cfg: SinkConfig) -> None:
        """A sink took a rotated secret: the running configuration says so too (an apply of another
        change then finds this sink unchanged instead of restarting it)."""
        if cfg.name in self.config.sinks:
            self.config = replace(self.config, sinks={**self.config.sinks, cfg.name: cfg})

    def _build_heartbeat(self, config: Config, links: dict[str, MqttLink]) -> Heartbeat | None:
        hb = config.heartbeat
        if hb is None or hb.sink not in links:
            return None
        link = links[hb.sink]
        heartbeat = Heartbeat(hb, config.gateway, link.cfg.topic_prefix, link, self.key, self.store,
                              self.status, self.state_dir)
        heartbeat.oee = self.oee_live
        link.will = heartbeat.will()
        return heartbeat

    # -- running and stopping ----------------------------------------------------------

    async def run(self) -> None:
        """Run until `stop()`; returns once everything has shut down."""
        self.loop = asyncio.get_running_loop()
        log.info("event=started version=%s gateway=%s devices=%d sinks=%d state_dir=%s kid=%s", __version__,
                 self.config.gateway.id, len(self.drivers), len(self.sinks), self.state_dir, self.key.kid)
        self.tasks.start(COMMITTER, self.committer.run)
        self._start_sinks(list(self.sinks), self.heartbeat is not None)
        self._start_devices(list(self.pipelines))
        self.ready.set()
        await self._stop_intake.wait()
        async with self._apply_lock:  # an apply in progress finishes first
            await self._stop_devices(list(self.drivers))
            await self._stop_sinks(list(self.sinks), self.heartbeat is not None, offline=True)
        await self.tasks.stop([COMMITTER], COMMITTER_STOP_S)  # after the devices: their last batches are written
        await self.tasks.stop_all(LINK_STOP_S)  # anything else registered and not stopped by its owner
        await self.committer.close()
        self.store.close()
        log.info("event=stopped gateway=%s", self.config.gateway.id)

    def stop(self) -> None:
        self._stop_intake.set()

    def request_restart(self, by: str) -> bool:
        """Stop cleanly and let `linebridge run` start the process again; False when this host cannot."""
        if self.on_restart is None:
            return False
        if self.restart_requested_by is None:
            self.restart_requested_by = by
            log.warning("event=restart_requested gateway=%s by=%s", self.config.gateway.id, by)
            self.on_restart()
        return True

    def _spawn(self, key: str, work: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        self.tasks.start(key, work)

    async def _halt(self, keys: list[str], timeout: float) -> bool:
        """Let the tasks `keys` end within `timeout`, then cancel the rest; True if none was cancelled."""
        return await self.tasks.stop(keys, timeout)

    def _start_devices(self, names: list[str]) -> None:
        for n in names:
            driver, pipeline = self.drivers[n], self.pipelines[n]
            self._spawn(f"device:{n}", lambda stop, n=n, d=driver, p=pipeline: self._run_device(n, d, p, stop))

    async def _stop_devices(self, names: list[str]) -> bool:
        """Stop the drivers; each pipeline stores the batch it holds before its task ends."""
        for n in names:
            self.tasks.ask_to_stop([f"device:{n}"])  # before driver.stop(): the stream's end was asked for
            try:
                await self.drivers[n].stop()
            except Exception as exc:  # one driver's failure to stop must not keep the others running
                log.warning("event=device_stop_failed device=%s error=%r", n, str(exc))
        return await self._halt([f"device:{n}" for n in names], DEVICE_STOP_S)

    def _start_sinks(self, names: list[str], heartbeat: bool) -> None:
        """Links first, then the sink workers and the heartbeat that use them."""
        for n in names:
            if n in self.links:
                self._spawn(f"link:{n}", self.links[n].run)
        for n in names:
            self._spawn(f"sink:{n}", self.sinks[n].run)
        if heartbeat and self.heartbeat is not None:
            self._spawn("heartbeat", self.heartbeat.run)

    async def _stop_sinks(self, names: list[str], heartbeat: bool, offline: bool) -> None:
        """Each sink finishes its batch in flight; the heartbeat says offline (if asked); links close."""
        await self._halt([f"sink:{n}" for n in names] + (["heartbeat"] if heartbeat else []), SINK_STOP_S)
        if heartbeat and offline and self.heartbeat is not None:
            await self.heartbeat.publish_offline(timeout=2.0)
        await self._halt([f"link:{n}" for n in names if n in self.links], LINK_STOP_S)

    async def _run_device(self, name: str, driver: Driver, pipeline: DevicePipeline, stop: asyncio.Event) -> None:
        """One life of a device's task: the driver's samples through the pipeline until `stop`.

        A failure, or a stream that ends unasked, stops the driver and raises: `self.tasks`
        logs it and starts this again after its backoff.
        """
        try:
            await driver.start()
            await pipeline.run()
            if not stop.is_set():
                raise RuntimeError("sample stream ended")
        except Exception:
            try:
                await driver.stop()
            except Exception as stop_exc:
                log.warning("event=device_stop_failed device=%s error=%r", name, str(stop_exc))
            raise

    # -- live configuration ------------------------------------------------------------

    async def apply(self, new: Config) -> dict[str, Any]:
        """Put the validated `new` configuration in force while `run()` runs; restart only what changed.

        Call it on the gateway's loop; from another thread:
        `asyncio.run_coroutine_threadsafe(sup.apply(cfg), sup.loop)`. Applies
        are serialized, and one that has begun finishes even if its caller
        stops waiting. Returns `{"restarted": {...}, "started": {...},
        "stopped": {...}, "unchanged": N, "restart_required": [reason, ...]}`,
        each of the three with `devices`, `sinks` and `heartbeat` (the sink it
        rides on) name lists; `unchanged` counts the devices and sinks left
        running untouched. Sections only a restart applies ([gateway],
        [store], [webui]) are reported, not applied: `self.config` becomes
        `new` with those sections as they run. Raises RuntimeError when the
        supervisor is not running (not started yet, or stopping).
        """
        if self.loop is None or self._stop_intake.is_set():
            raise RuntimeError("the gateway is not running: nothing to apply the configuration to")
        if asyncio.get_running_loop() is not self.loop:
            raise RuntimeError("apply() runs on the gateway's loop: use "
                               "asyncio.run_coroutine_threadsafe(sup.apply(cfg), sup.loop)")
        # shielded: a caller that gives up (a page's deadline) must not leave half a topology behind
        task = asyncio.ensure_future(self._apply(new))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved even if nobody waits
        return await asyncio.shield(task)

    async def _apply(self, new: Config) -> dict[str, Any]:
        async with self._apply_lock:
            if self._stop_intake.is_set():
                raise RuntimeError("the gateway is stopping: the configuration was not applied")
            plan = topology.plan(self.config, new)
            cfg, dev, snk = plan.config, plan.devices, plan.sinks
            # build everything new first: if that fails, nothing has been touched
            tallies = ((ShiftTallies(cfg.shifts, cached=self.store.get_state) if cfg.shifts else None)
                       if plan.shifts else self.tallies)
            if tallies is not None:  # a changed ideal cycle counts from the next closing shift
                tallies.ideal = ideal_cycles(cfg)
            built = {n: self._build_device(n, cfg, tallies) for n in [*dev.changed, *dev.added]}
            sinks = {n: self._build_sink(cfg.sinks[n]) for n in [*snk.changed, *snk.added]}
            old_hb = self.heartbeat
            # devices first (their last batches reach the store), then sinks (each ends its batch in flight)
            clean = await self._stop_devices([*dev.removed, *dev.changed])
            gone = [*snk.removed, *snk.changed]
            hb_topic = None if cfg.heartbeat is None else f"{cfg.sinks[cfg.heartbeat.sink].topic_prefix}/status"
            await self._stop_sinks(gone, plan.heartbeat and old_hb is not None,
                                   offline=old_hb is not None and old_hb.topic != hb_topic)
            for n in snk.removed:
                log.info("event=sink_removed sink=%s undelivered=%d", n, await asyncio.to_thread(self.store.backlog, n))
            await asyncio.to_thread(self.store.route, routes(cfg))
            # the new topology, copied rather than changed in place (status() may be iterating in a thread)
            units = {n: (self.drivers[n], self.pipelines[n]) for n in dev.unchanged} | built
            self.drivers = {n: units[n][0] for n in cfg.devices}
            self.pipelines = {n: units[n][1] for n in cfg.devices}
            self.sinks = {n: sinks[n][0] if n in sinks else self.sinks[n] for n in cfg.sinks}
            self.links = {n: sinks[n][1] if n in sinks else self.links[n] for n in cfg.sinks
                          if isinstance(cfg.sinks[n], MqttSinkConfig)}
            if plan.heartbeat:
                self.heartbeat = self._build_heartbeat(cfg, self.links)
            self.wake.events = [s.wake for s in self.sinks.values()]
            self.tallies = tallies
            for n in dev.unchanged:  # same events; only what the whole gateway decides may differ
                self.pipelines[n].config = cfg
                self.pipelines[n].telemetry = cfg.wants_telemetry
            self._refresh_machines(cfg, [*dev.changed, *dev.added], reload=not clean)
            self.config = cfg
            for sink in self.sinks.values():   # new targets apply to the kept sinks' windows too
                sink.stats.levels.configure(cfg.service_levels)
            self._start_sinks([*snk.changed, *snk.added], plan.heartbeat)
            self._start_devices([*dev.changed, *dev.added])
            return self._report(plan, old_hb)

    def _refresh_machines(self, cfg: Config, names: list[str], reload: bool) -> None:
        """Give the (re)built pipelines their machines' stored context and tally.

        A machine new to the gateway gets its stored context. With `reload` (a
        device task was cancelled, perhaps between a commit and its in-memory
        update) the stored copies replace the memory: read on the loop, so no
        other pipeline's update can land in between.
        """
        for machine in sorted({cfg.devices[n].machine or n for n in names}):
            key = context_key(machine)
            if reload or self.context.get(key) is None:
                ctx = MachineContext.from_bytes(self.store.get_state(key))
                if ctx is not None:
                    self.context.put(key, ctx)
            if reload and self.tallies is not None:
                self.tallies.tallies[machine] = ShiftTally.from_bytes(self.store.get_state(summary_key(machine)))

    def _report(self, plan: topology.Plan, old_hb: Heartbeat | None) -> dict[str, Any]:
        dev, snk = plan.devices, plan.sinks
        hb_old = [old_hb.cfg.sink] if plan.heartbeat and old_hb is not None else []
        hb_new = [self.heartbeat.cfg.sink] if plan.heartbeat and self.heartbeat is not None else []
        out = {"restarted": {"devices": list(dev.changed), "sinks": list(snk.changed),
                             "heartbeat": hb_new if hb_old and hb_new else []},
               "started": {"devices": dev.added, "sinks": snk.added, "heartbeat": [] if hb_old else hb_new},
               "stopped": {"devices": dev.removed, "sinks": snk.removed, "heartbeat": [] if hb_new else hb_old},
               "unchanged": len(dev.unchanged) + len(snk.unchanged),
               "restart_required": plan.restart_required}
        why = {"devices": dev.changed, "sinks": snk.changed}
        for action in ("restarted", "started", "stopped"):
            for kind, names in out[action].items():
                for n in names:
                    changed = why.get(kind, {}).get(n) if action == "restarted" else None
                    log.info("event=config_%s %s=%s%s", action, kind.rstrip("s"), n,
                             f" changed={changed}" if changed else "")
        for reason in plan.restart_required:
            log.warning("event=config_restart_required reason=%r", reason)
        log.info("event=config_applied source=%s restarted=%d started=%d stopped=%d unchanged=%d "
                 "restart_required=%d", plan.config.source,
                 *(sum(len(v) for v in out[a].values()) for a in ("restarted", "started", "stopped")),
                 out["unchanged"], len(plan.restart_required))
        return out

    # -- figures -----------------------------------------------------------------------

    def oee_live(self, now: float) -> dict[str, dict[str, Any]]:
        """Each machine's running shift so far (`gateway.oee`), by machine; empty without shifts."""
        if self.tallies is None:
            return {}
        out = {}
        tz = self.tallies.calendar.timezone
        for machine, tally in sorted(self.tallies.tallies.items()):
            rec = tally.live(now, tz, self.tallies.ideal_cycle(machine)) if tally is not None else None
            if rec is not None:
                out[machine] = rec
        return out

    def status(self) -> dict[str, Any]:
        """A snapshot for progress lines, the demo summary, the heartbeat and the web UI."""
        sinks, drivers = self.sinks, self.drivers
        return {
            "environment": self.config.gateway.environment,
            "uptime": round(time.time() - self.started, 1),
            "read": self.intake.samples,
            "bad_samples": self.intake.bad_samples,
            "events": self.intake.events,
            "stored": self.intake.stored,
            "refused": self.intake.refused,
            "implausible": self.intake.implausible,
            "sinks": {n: dict(s.stats.as_dict(), backlog=self.store.backlog(n))
                      for n, s in sinks.items()},
            "devices": {n: d.health.as_dict() for n, d in drivers.items()},
            "tasks": self.tasks.status(),
            "healthy": self.tasks.healthy(),
            # per MQTT sink with a client certificate: when it expires (`expiring` within 30 days)
            "certificates": certificates(self.config.sinks),
        }

    def production(self) -> list[dict[str, Any]]:
        """Per machine, for the console's overview: its work center and devices, the open work order the
        Odoo sinks last resolved for it, its good parts and scrap in the running shift (with a shift
        calendar) and since the start, its rate, and when each sink last delivered one of its events."""
        cfg, sinks = self.config, self.sinks
        devices: dict[str, list[str]] = {}
        for name, spec in cfg.devices.items():
            devices.setdefault(spec.machine or name, []).append(name)
        out = []
        for m in sorted(set(cfg.machines) | set(devices)):
            mc = cfg.machines.get(m)
            wc = mc.work_center if mc is not None else None
            orders = []
            for n, s in sinks.items():
                if not isinstance(s.cfg, MqttSinkConfig) and wc:
                    wo, age = s.md.cached_workorder(wc)
                    if age is not None:
                        orders.append({"sink": n, "name": wo.name if wo else None,
                                       "production": wo.production if wo else None, "age_s": round(age, 1)})
            tally = self.tallies.tallies.get(m) if self.tallies is not None else None
            shift = ({"name": tally.shift, "start": tally.start, "end": tally.end, "good": tally.good,
                      "scrap": tally.scrap} if tally is not None and tally.shift else None)
            out.append({"machine": m, "work_center": wc, "devices": sorted(devices.get(m, [])),
                        "work_orders": orders, "shift": shift, "shifts_configured": self.tallies is not None,
                        "since_start": self.board.snapshot(m), "started": self.started,
                        "deliveries": [{"sink": n, "type": "mqtt" if isinstance(s.cfg, MqttSinkConfig) else "odoo",
                                        "at": s.stats.machine_deliveries.get(m)} for n, s in sinks.items()]})
        return out
