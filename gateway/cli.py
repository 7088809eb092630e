"""The `linebridge` command: check-config, run, demo, soak, keys, verify, fleet, odoo, mqtt, relay, sandbox plant|odoo,
--version.

It owns argument parsing, signal handling and exit codes; the work itself lives
in the supervisor, the demo and the sandboxes.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from typing import Awaitable, Callable
from pathlib import Path

from gateway import __version__, config as config_mod, logs
from gateway.errors import ConfigError


LAYERS = ("a configuration file; repeat for layers (a site template, then the gateway's own file): "
          "later files win per key, tables merge, validated as one")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="linebridge", description="Linebridge edge gateway")
    p.add_argument("--version", action="version", version=f"linebridge {__version__}")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("check-config", help="validate a configuration (one file, or layers merged in order) and exit")
    c.add_argument("path", type=Path, nargs="*", help="configuration file(s); later ones win per key")
    c.add_argument("--config", type=Path, action="append", default=[], help=LAYERS)

    r = sub.add_parser("run", help="run the gateway")
    r.add_argument("--config", type=Path, action="append", required=True, help=LAYERS)
    r.add_argument("--state-dir", type=Path, default=None,
                   help="queue and keys (default /var/lib/linebridge as root, else ~/.local/state/linebridge)")

    d = sub.add_parser("demo", help="sandbox plant + sandbox Odoo + gateway, on loopback")
    d.add_argument("--duration", type=float, default=None, help="seconds the plant makes parts")
    d.add_argument("--json", action="store_true", help="end with one JSON summary line on stdout")
    d.add_argument("--print-config", action="store_true", help="print the demo configuration and exit")
    d.add_argument("--mqtt", metavar="URL", default=None,
                   help="also publish to this MQTT broker (mqtt://HOST:PORT) with a heartbeat, site 'demo'")

    from gateway.queuecli import add_parsers
    add_parsers(sub, "the gateway's state directory (default as for `run`)")
    from gateway import keyscli
    keyscli.add_parsers(sub, "the gateway's state directory (default as for `run`)")

    o = sub.add_parser("odoo", help="Odoo connection tools")
    os_ = o.add_subparsers(dest="odoo_cmd", metavar="WHAT", required=True)
    oc = os_.add_parser("check", help="can this configuration deliver to its Odoo? one finding per line")
    oc.add_argument("--config", type=Path, action="append", required=True, help=LAYERS)
    orot = os_.add_parser("rotate-key", help="check a new API key against the configured Odoo, store it "
                          "atomically (a running gateway takes it without a restart), name the old one to revoke")
    orot.add_argument("--config", type=Path, action="append", required=True, help=LAYERS)
    orot.add_argument("--sink", default=None, help="the Odoo sink (needed when there are several)")
    orot.add_argument("--new-key-file", default="-", metavar="PATH",
                      help="a file holding the new key, or - for standard input (default); never an argument, "
                           "where `ps` would show it")
    orot.add_argument("--state-dir", type=Path, default=None, help="the gateway's state directory")

    from gateway import fleetcli
    fleetcli.add_parser(sub)

    m = sub.add_parser("mqtt", help="MQTT connection tools")
    ms = m.add_subparsers(dest="mqtt_cmd", metavar="WHAT", required=True)
    mrot = ms.add_parser("rotate-password", help="check a new broker password with a connect, store it atomically "
                         "(a running gateway uses it from its next connect)")
    mrot.add_argument("--config", type=Path, action="append", required=True, help=LAYERS)
    mrot.add_argument("--sink", default=None, help="the MQTT sink (needed when several have a username)")
    mrot.add_argument("--new-password-file", default="-", metavar="PATH",
                      help="a file holding the new password, or - for standard input (default)")
    mrot.add_argument("--state-dir", type=Path, default=None, help="the gateway's state directory")

    r = sub.add_parser("relay", help="the central relay: broker -> verified, stored -> Odoo (relay --help)",
                       add_help=False)
    r.add_argument("rest", nargs=argparse.REMAINDER, help="`relay --config relay.toml`, or register|gateways|"
                                                         "quarantine (see `relay --help`)")

    b = sub.add_parser("bench", help="benchmarks, reported against a baseline measured in the same run")
    b.add_argument("what", choices=["store", "modbus", "odoo", "gateway", "relay"])
    b.add_argument("rest", nargs=argparse.REMAINDER, help="options of that benchmark (see --help after it)")

    from gateway.soak.options import add_arguments as soak_arguments
    soak_arguments(sub.add_parser("soak", help="time-compressed endurance run: plant, Odoo, broker, gateway, "
                                  "faults; one JSON verdict (root: mounts a tmpfs)"))

    s = sub.add_parser("sandbox", help="simulators for rehearsing without a plant or an ERP")
    ss = s.add_subparsers(dest="sandbox", metavar="KIND", required=True)
    sp = ss.add_parser("plant", help="a simulated plant serving Modbus TCP")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=5020)
    sp.add_argument("--alarm-interval", type=float, default=8.0, metavar="S",
                    help="mean seconds between two alarms (each lasts 2-4 s)")
    sp.add_argument("--duration", type=float, default=None,
                    help="stop making parts after S seconds, serve the final values --linger more, then exit")
    sp.add_argument("--linger", type=float, default=30.0, metavar="S",
                    help="with --duration: seconds to keep serving the final values before exiting "
                         "(default 30; 'inf' serves until Ctrl-C)")
    sp.add_argument("--ground-truth", type=Path, default=None)
    sp.add_argument("--seed", type=int, default=None)
    so = ss.add_parser("odoo", help="an Odoo 17 compatible JSON-RPC server")
    so.add_argument("--host", default="127.0.0.1")
    so.add_argument("--port", type=int, default=8069)
    so.add_argument("--data", type=Path, default=None, help="JSON file the database persists to")
    so.add_argument("--api-key", default="admin")
    so.add_argument("--database", default="sandbox")
    so.add_argument("--odoo-version", default="17.0", help="16.0, 17.0, 18.0 or 19.0 (JSON-2 from 19)")
    so.add_argument("--with-module", action="append", default=[], metavar="MODULE",
                    choices=("quality_control_oca", "quality_control_stock_oca", "quality_control_mrp_oca"),
                    help="also install an optional module: quality_control_oca (OCA quality control)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "relay":   # `relay --config F`: argparse's remainder does not take a leading option
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logs.setup(args.log_level)
    if args.command == "check-config":
        paths = [*args.path, *args.config]
        if not paths:
            print("check-config: name a configuration file", file=sys.stderr)
            return 2
        return check_config(paths)
    if args.command == "run":
        return run(args.config, args.state_dir)
    if args.command == "demo":
        from gateway.demo import WEBUI_PORT, demo, demo_config_text
        if args.mqtt is not None and not args.mqtt.startswith(("mqtt://", "mqtts://")):
            print(f"demo: --mqtt must be mqtt://HOST:PORT, got {args.mqtt!r}", file=sys.stderr)
            return 2
        if args.print_config:
            # the same file `demo` runs, console included: a copied demo config has its [webui]
            sys.stdout.write(demo_config_text(mqtt=args.mqtt, webui_port=WEBUI_PORT))
            return 0
        return demo(duration=args.duration, as_json=args.json, mqtt=args.mqtt)
    if args.command == "keys":
        from gateway.keyscli import run_keys
        from gateway.supervisor import default_state_dir
        return run_keys(args, args.state_dir or default_state_dir())
    if args.command == "verify":
        from gateway.keyscli import run_verify
        return run_verify(args)
    if args.command in ("queue", "journal"):
        from gateway.queuecli import run_journal, run_queue
        from gateway.supervisor import default_state_dir
        state = args.state_dir or default_state_dir()
        return run_queue(args, state) if args.command == "queue" else run_journal(args, state)
    if args.command == "mqtt":
        return mqtt_rotate_password(args)
    if args.command == "odoo" and args.odoo_cmd == "rotate-key":
        return odoo_rotate_key(args)
    if args.command == "odoo":
        return odoo_check(args.config)
    if args.command == "fleet":
        from gateway.fleetcli import run as fleet_run
        return fleet_run(args)
    if args.command == "relay":
        from gateway.relay.cli import main as relay_main
        return relay_main([*extra, *args.rest])
    if args.command == "bench":
        if args.what == "store":
            from gateway.bench.store import main as bench_main
        elif args.what == "odoo":
            from gateway.bench.odoo import main as bench_main
        elif args.what == "gateway":
            from gateway.bench.gateway import main as bench_main
        elif args.what == "relay":
            from gateway.bench.relay import main as bench_main
        else:
            from gateway.bench.modbus import main as bench_main
        return bench_main(args.rest)
    if args.command == "soak":
        from gateway.soak.runner import run as soak_run
        return soak_run(args)
    if args.command == "sandbox" and args.sandbox == "plant":
        return sandbox_plant(args)
    if args.command == "sandbox" and args.sandbox == "odoo":
        return sandbox_odoo(args)
    _parser().print_help()
    return 2


def _load(paths: list[Path], count: bool = False, state_dir: Path | None = None) -> "config_mod.Config | None":
    """The validated config (layers merged), or None after printing every problem (and their count)."""
    try:
        return config_mod.load(list(paths), state_dir=state_dir)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        if count:
            print(f"{'+'.join(p.name for p in paths)}: {len(exc.problems)} error(s)", file=sys.stderr)
        return None


def check_config(paths: list[Path]) -> int:
    cfg = _load(paths, count=True)
    if cfg is None:
        return 1
    print(cfg.summary())
    return 0


def run(paths: list[Path], state_dir: Path | None) -> int:
    from gateway.supervisor import Supervisor, default_state_dir
    cfg = _load(paths, state_dir=state_dir)
    path = paths[-1]   # the console edits the gateway's own file, the last layer
    if cfg is None:
        return 1

    from gateway.signing import KeyFileError

    from gateway import sdnotify, services as services_mod

    restart: list[str] = []

    async def _main() -> None:
        sup = Supervisor(cfg, state_dir or default_state_dir())
        sup.config_layers = [p.resolve() for p in paths[:-1]]   # the console validates its edits over them
        sup.watch_credentials([p.resolve() for p in paths])      # a rotated API key is used without a restart
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # the console's restart button: a clean stop, then this process runs itself again (below);
        # a moment's delay lets the request that asked for it be answered first
        sup.on_restart = lambda: loop.call_later(0.5, stop.set)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        services = services_mod.load(sup, path.resolve())
        runner = asyncio.create_task(sup.run())
        # systemd: watchdog pings from this loop, READY=1 once the supervisor and the services are up
        services_up = asyncio.Event()
        notify = asyncio.create_task(sdnotify.lifecycle(sup, stop, services_up), name="sd_notify")
        try:
            await services_mod.start_all(services)
            services_up.set()
            for service in services:
                for line in service.banner:
                    print(line, flush=True)
            await stop.wait()
        finally:
            # the services read the store: they stop before the supervisor closes it
            await services_mod.stop_all(services)
            sup.stop()
            await runner
            notify.cancel()
            await asyncio.gather(notify, return_exceptions=True)
            if sup.restart_requested_by:
                restart.append(sup.restart_requested_by)

    try:
        asyncio.run(_main())
    except KeyFileError as exc:
        print(f"linebridge run: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"linebridge run: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if restart:
        _exec_again()
    return 0


def _exec_again() -> None:
    """Replace this process by the same command line (same PID, so systemd keeps watching it)."""
    import logging
    logging.getLogger("linebridge").warning("event=restarting pid=%d", os.getpid())
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, list(sys.orig_argv))


def odoo_check(paths: list[Path]) -> int:
    from gateway.sinks.odoo.check import check
    cfg = _load(paths)
    if cfg is None:
        return 1
    blockers = 0
    from gateway.config import OdooSinkConfig
    odoo_sinks = cfg.sinks_of(OdooSinkConfig)
    if not odoo_sinks:
        print("no Odoo sink in this configuration", file=sys.stderr)
        return 1
    for sink in odoo_sinks.values():
        findings = asyncio.run(check(cfg, sink))
        for f in findings:
            print(f"sink {sink.name}: {f}")
        blockers += sum(1 for f in findings if f.level == "blocker")
    print(f"{blockers} blocker(s)" if blockers else "ready: no blockers")
    return 1 if blockers else 0


def _device_fingerprints(state_dir: Path | None) -> None:
    """Fingerprint secrets under this gateway's key, so what a command prints matches its logs and console."""
    from gateway.credentials import use_fingerprint_key
    from gateway.signing import DeviceKey, KeyFileError
    from gateway.supervisor import default_state_dir
    try:
        key = DeviceKey.load(state_dir or default_state_dir())
    except KeyFileError:
        key = None      # fingerprints of this process only; the command itself still works
    if key is not None:
        use_fingerprint_key(key.fingerprint_key())


def _rotate(command: str, secret_file: str, state_dir: Path | None,
            rotate: Callable[[str], Awaitable[list[str]]]) -> int:
    """A rotate command: the new secret from stdin or a file (never an argument), `rotate` it, print its lines."""
    from gateway.credentials import CredentialError
    _device_fingerprints(state_dir)
    try:
        new = (sys.stdin.readline() if secret_file == "-"
               else Path(secret_file).read_text(encoding="utf-8")).strip()
    except OSError as exc:
        print(f"{command}: cannot read {secret_file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        lines = asyncio.run(rotate(new))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except CredentialError as exc:
        for f in getattr(exc, "findings", ()):   # an Odoo key refused by `odoo check`
            print(f"  {f}", file=sys.stderr)
        print(f"{command}: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


def odoo_rotate_key(args: argparse.Namespace) -> int:
    from gateway.sinks.odoo.rotate import rotate

    async def go(new: str) -> list[str]:
        return (await rotate(list(args.config), new, args.sink, args.state_dir, by="cli")).lines()
    return _rotate("odoo rotate-key", args.new_key_file, args.state_dir, go)


def mqtt_rotate_password(args: argparse.Namespace) -> int:
    from gateway.sinks.mqtt.rotate import rotate_password

    async def go(new: str) -> list[str]:
        return await rotate_password(list(args.config), new, args.sink, args.state_dir)
    return _rotate("mqtt rotate-password", args.new_password_file, args.state_dir, go)


def _banner(what: str, where: str) -> None:
    print(f"*** Linebridge SANDBOX {what} on {where} - a simulator for rehearsals, "
          "not a real system ***", flush=True)


def sandbox_plant(args: argparse.Namespace) -> int:
    from gateway.sandbox.plant import Plant, run_plant

    async def _main() -> None:
        ready = asyncio.Event()
        linger = None if args.duration is None or args.linger == float("inf") else max(args.linger, 0.0)

        def final(truth: dict) -> None:
            machine = truth["machines"]["CNC-01"]
            then = f"exiting in {linger:g} s" if linger is not None else "serving them until stopped (Ctrl-C)"
            print(f"plant: final: {machine['parts']} good parts, {machine['scrap']} scrap, {machine['alarms']} "
                  f"alarm(s){' (ground truth written)' if args.ground_truth else ''}; counters frozen, {then}",
                  flush=True)

        runner = asyncio.create_task(run_plant(host=args.host, port=args.port, duration=args.duration,
                                               ground_truth=args.ground_truth, seed=args.seed,
                                               ready=ready, linger=linger, on_final=final,
                                               plant=Plant(seed=args.seed, duration=args.duration,
                                                           mean_alarm_interval=max(args.alarm_interval, 0.1))))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # cancelling the plant makes it write its ground truth a last time and return
            loop.add_signal_handler(sig, runner.cancel)
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait([waiter, runner], return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set():
            _banner("plant (machine CNC-01, Modbus TCP unit 1)", f"{args.host}:{args.port}")
        waiter.cancel()
        await runner

    try:
        asyncio.run(_main())
    except asyncio.CancelledError:
        pass
    return 0


def sandbox_odoo(args: argparse.Namespace) -> int:
    from gateway.sandbox.odoo import OdooSandbox
    sb = OdooSandbox(host=args.host, port=args.port, data_path=args.data, api_key=args.api_key,
                     database=args.database, version=args.odoo_version, modules=args.with_module)
    try:
        sb.start()
    except OSError as exc:
        print(f"sandbox odoo: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    _banner(f"Odoo {args.odoo_version} (database {args.database!r}, login 'admin')",
            f"http://{args.host}:{sb.port}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
