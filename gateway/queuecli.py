"""`linebridge queue ...` and `linebridge journal verify|tail`: the store seen by a person.

It owns the commands that inspect and repair a state directory, live (beside
a running gateway, through LMDB's multi-process locking) or not: queue
statistics, the events a sink holds waiting for context (a work order), the
dead letters (list, show, replay, discard; each replay and discard is recorded
in the journal) and the journal's verification: with the journal key derived from
the device key when this user can read it (links only otherwise), and against
signed checkpoints taken from the heartbeat (`--checkpoint`), or made here
(`journal checkpoint`, for a gateway without an MQTT heartbeat).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gateway import checkpoint
from gateway.keyscli import _public_key as public_key
from gateway.signing import DeviceKey, KeyFileError
from store.journal import JournalError
from store.queue import Store, StoreError, StoreOptions


def add_parsers(sub: argparse._SubParsersAction, state_dir_help: str) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", type=Path, default=None, help=state_dir_help)
    q = sub.add_parser("queue", help="inspect the store: stats, held events and dead letters")
    qs = q.add_subparsers(dest="queue_cmd", metavar="WHAT", required=True)
    st = qs.add_parser("stats", parents=[common],
                       help="per class and sink: count, bytes, oldest age, lag, held, dead letters")
    st.add_argument("--json", action="store_true")
    hd = qs.add_parser("held", parents=[common],
                       help="events a sink holds in a lane, waiting for context (an open work order)")
    hd.add_argument("sink", help="the sink's name (e.g. odoo)")
    hd.add_argument("--json", action="store_true")
    d = qs.add_parser("dlq", help="dead letters: list, show, replay, discard")
    ds = d.add_subparsers(dest="dlq_cmd", metavar="ACTION", required=True)
    ls = ds.add_parser("list", parents=[common])
    ls.add_argument("--sink")
    ls.add_argument("--kind")
    ls.add_argument("--json", action="store_true")
    sh = ds.add_parser("show", parents=[common])
    sh.add_argument("sink")
    sh.add_argument("seq", type=int)
    for name in ("replay", "discard"):
        a = ds.add_parser(name, parents=[common])
        a.add_argument("sink")
        g = a.add_mutually_exclusive_group(required=True)
        g.add_argument("--seq", type=int, action="append", help="one dead letter (repeatable)")
        g.add_argument("--kind", help="every dead letter of this event kind")
        g.add_argument("--all", action="store_true", help="every dead letter of the sink")
        a.add_argument("--by", default="cli", help="who is doing this (recorded in the journal)")

    j = sub.add_parser("journal", help="the keyed, hash-chained delivery journal")
    js = j.add_subparsers(dest="journal_cmd", metavar="WHAT", required=True)
    jv = js.add_parser("verify", parents=[common],
                       help="check the chain; name the first altered, reordered or removed entry")
    jv.add_argument("--checkpoint", metavar="FILE|JSON", action="append", default=[],
                    help="also compare with a signed checkpoint (the heartbeat's `journal`, or the whole "
                         "status message as taken from the broker); repeatable")
    jv.add_argument("--key", help="the public key the checkpoints were signed with (base64 or a file); "
                                  "default: this state directory's device key")
    jc = js.add_parser("checkpoint", parents=[common],
                       help="print a signed checkpoint of the journal's head now (JSON), to keep elsewhere")
    jc.add_argument("--gateway", default="", help="the gateway id to name in it (default: none)")
    tail = js.add_parser("tail", parents=[common], help="the newest entries as JSON lines")
    tail.add_argument("-n", type=int, default=20)


def _open(state_dir: Path, write: bool = False, key: DeviceKey | None = None) -> Store:
    path = state_dir / "store"
    if not (path / "data.mdb").exists():
        raise StoreError(f"no store under {state_dir} (expected {path}/data.mdb)")
    options = StoreOptions(journal_key=key.journal_key() if key is not None else None)
    return Store(path, readonly=not write, options=options)


def _device_key(state_dir: Path) -> tuple[DeviceKey | None, str | None]:
    """The device key (for the journal key), or None and why not."""
    try:
        key = DeviceKey.load(state_dir)
    except (KeyFileError, OSError) as exc:
        return None, str(exc)
    return key, None if key is not None else f"no device key under {state_dir}"


def run_queue(args: argparse.Namespace, state_dir: Path) -> int:
    write = args.queue_cmd == "dlq" and args.dlq_cmd in ("replay", "discard")
    try:  # a replay or discard is journaled: a keyed journal needs its key
        store = _open(state_dir, write, _device_key(state_dir)[0] if write else None)
    except StoreError as exc:
        print(f"linebridge queue: {exc}", file=sys.stderr)
        return 1
    try:
        if args.queue_cmd == "stats":
            return _stats(store, args.json)
        if args.queue_cmd == "held":
            return _held(store, args.sink, args.json)
        return _dlq(store, args)
    finally:
        store.close()


def _stats(store: Store, as_json: bool) -> int:
    st = store.stats()
    if as_json:
        print(json.dumps(st, sort_keys=True))
        return 0
    print(f"store {st['path']}: last seq {st['last_seq']}, map {st['map_used'] // 1024} KiB used "
          f"of {st['map_size'] // 1024} KiB, {st['unrouted']} unrouted")
    for cls, c in st["classes"].items():
        age = "-" if c["oldest_age_s"] is None else f"{c['oldest_age_s']:.0f}s"
        print(f"  class {cls:<9} events={c['events']} bytes={c['bytes']} oldest={age} "
              f"cap_events={c['cap_events'] or '-'} cap_bytes={c['cap_bytes'] or '-'} evicted={c['evicted']}")
    for sink, s in st["sinks"].items():
        print(f"  sink {sink:<12} lag={s['lag_seq']} held={s['held']} dead_letters={s['dead_letters']} "
              f"cursors={s['cursors']}")
    return 0


def _held(store: Store, sink: str, as_json: bool) -> int:
    held = store.held(sink)
    now = store.clock()
    if as_json:  # one JSON document (an array), as `dlq list --json`
        print(json.dumps([{"sink": sink, "seq": h.stored.seq, "lane": h.lane, "since": h.since,
                           "reason": h.reason, "event": h.stored.event} for h in held], sort_keys=True))
        return 0
    for h in held:
        ev = h.stored.event
        print(f"{sink} seq={h.stored.seq} event_id={ev['id']} kind={ev['kind']} lane={h.lane} "
              f"held_for={now - h.since:.0f}s reason={h.reason!r}")
    print(f"{len(held)} held event(s) of sink {sink!r}")
    return 0


def _dlq(store: Store, args: argparse.Namespace) -> int:
    if args.dlq_cmd == "list":
        letters = store.dead_letters(args.sink, args.kind)
        if args.json:  # one JSON document: an array of dead letters, [] when there are none
            print(json.dumps(letters, sort_keys=True))
            return 0
        for letter in letters:
            ev = letter["event"]
            state = " (replay pending)" if letter.get("replayed") else ""
            print(f"{letter['sink']} seq={letter['seq']} event_id={ev['id']} kind={ev['kind']} "
                  f"attempts={letter['attempts']}{state} error={letter['error']!r}")
        print(f"{len(letters)} dead letter(s)")
        return 0
    if args.dlq_cmd == "show":
        for letter in store.dead_letters(args.sink):
            if letter["seq"] == args.seq:
                print(json.dumps(letter, indent=2, sort_keys=True))
                return 0
        print(f"no dead letter seq {args.seq} for sink {args.sink!r}", file=sys.stderr)
        return 1
    act = store.replay if args.dlq_cmd == "replay" else store.discard
    try:
        n = act(args.sink, seqs=args.seq, kind=args.kind, who=args.by)
    except JournalError as exc:
        print(f"linebridge queue: {exc}", file=sys.stderr)
        return 1
    print(f"{args.dlq_cmd}: {n} dead letter(s) of sink {args.sink!r}")
    return 0 if n else 1


def run_journal(args: argparse.Namespace, state_dir: Path) -> int:
    key, why = _device_key(state_dir) if args.journal_cmd in ("verify", "checkpoint") else (None, None)
    if args.journal_cmd == "checkpoint" and key is None:
        print(f"linebridge journal: a checkpoint is signed with the device key: {why}", file=sys.stderr)
        return 1
    try:
        store = _open(state_dir, key=key)
    except StoreError as exc:
        print(f"linebridge journal: {exc}", file=sys.stderr)
        return 1
    try:
        if args.journal_cmd == "tail":
            for entry in store.journal_entries(args.n):
                print(json.dumps(entry, sort_keys=True))
            return 0
        if args.journal_cmd == "checkpoint" and key is not None:
            print(json.dumps(checkpoint.make(store.journal_head(), key, args.gateway, time.time()), sort_keys=True))
            return 0
        return _verify(store, args, state_dir, key, why)
    finally:
        store.close()


def _verify(store: Store, args: argparse.Namespace, state_dir: Path, key: DeviceKey | None,
            why: str | None) -> int:
    verdict = store.verify_journal()
    print(verdict, file=sys.stdout if verdict.ok else sys.stderr)
    if key is None and verdict.keyed_from is not None:
        print(f"linebridge journal: MACs not checked: {why}", file=sys.stderr)
    ok = verdict.ok
    if args.checkpoint:
        try:
            public = public_key(args.key) if args.key else (key.public if key else None)
        except (KeyFileError, OSError) as exc:
            print(f"linebridge journal: --key: {exc}", file=sys.stderr)
            return 2
        if public is None:
            print(f"linebridge journal: --checkpoint needs --key ({why})", file=sys.stderr)
            return 2
        head = store.journal_head()
        for text in args.checkpoint:
            try:
                cp = checkpoint.parse(text)
            except (ValueError, OSError) as exc:
                print(f"linebridge journal: --checkpoint: {exc}", file=sys.stderr)
                return 2
            good, what = checkpoint.check(cp, public, head, store.journal_link)
            print(what, file=sys.stdout if good else sys.stderr)
            ok = ok and good
    return 0 if ok else 1
