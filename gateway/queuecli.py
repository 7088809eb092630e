"""`linebridge queue ...` and `linebridge journal verify`: the store seen by a person.

It owns the commands that inspect and repair a state directory, live (beside
a running gateway, through LMDB's multi-process locking) or not: queue
statistics, the events a sink holds waiting for context (a work order), the
dead letters (list, show, replay, discard; each replay and discard is recorded
in the journal) and the journal's verification.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from store.queue import Store, StoreError


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

    j = sub.add_parser("journal", help="the hash-chained delivery journal")
    js = j.add_subparsers(dest="journal_cmd", metavar="WHAT", required=True)
    js.add_parser("verify", parents=[common],
                  help="check the chain; name the first altered, reordered or removed entry")
    tail = js.add_parser("tail", parents=[common], help="the newest entries as JSON lines")
    tail.add_argument("-n", type=int, default=20)


def _open(state_dir: Path, write: bool = False) -> Store:
    path = state_dir / "store"
    if not (path / "data.mdb").exists():
        raise StoreError(f"no store under {state_dir} (expected {path}/data.mdb)")
    return Store(path, readonly=not write)


def run_queue(args: argparse.Namespace, state_dir: Path) -> int:
    try:
        store = _open(state_dir, write=args.queue_cmd == "dlq" and args.dlq_cmd in ("replay", "discard"))
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
    n = act(args.sink, seqs=args.seq, kind=args.kind, who=args.by)
    print(f"{args.dlq_cmd}: {n} dead letter(s) of sink {args.sink!r}")
    return 0 if n else 1


def run_journal(args: argparse.Namespace, state_dir: Path) -> int:
    try:
        store = _open(state_dir)
    except StoreError as exc:
        print(f"linebridge journal: {exc}", file=sys.stderr)
        return 1
    try:
        if args.journal_cmd == "tail":
            for entry in store.journal_entries(args.n):
                print(json.dumps(entry, sort_keys=True))
            return 0
        verdict = store.verify_journal()
        print(verdict, file=sys.stdout if verdict.ok else sys.stderr)
        return 0 if verdict.ok else 1
    finally:
        store.close()


