"""`linebridge keys show|init` and `linebridge verify`: the device identity seen by a person.

It owns the commands that show the gateway's public key and key id (what a
receiver needs to check signatures), make the key ahead of the first start, and
verify signed envelopes (one JSON object per line, as received from MQTT or
exported) against a public key. The signing itself lives in `gateway.signing`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO

from gateway.signing import DeviceKey, KeyFileError, PublicKey, key_path, verify
from gateway.telemetry import decode as decode_telemetry


def add_parsers(sub: argparse._SubParsersAction, state_dir_help: str) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", type=Path, default=None, help=state_dir_help)
    k = sub.add_parser("keys", help="the gateway's signing key (Ed25519)")
    ks = k.add_subparsers(dest="keys_cmd", metavar="WHAT", required=True)
    show = ks.add_parser("show", parents=[common], help="print the public key (base64) and the key id")
    show.add_argument("--json", action="store_true")
    ks.add_parser("init", parents=[common], help="make the key now instead of at the first start")

    v = sub.add_parser("verify", help="verify signed envelopes, one JSON object per line")
    v.add_argument("file", nargs="?", default="-", help="file of envelopes, or - for stdin (default)")
    v.add_argument("--key", required=True,
                   help="the public key: base64 as `keys show` prints it, or a file holding it (or a PEM key)")
    v.add_argument("--decode", action="store_true",
                   help="also print each verified telemetry record's values by tag name (values/1 needs its "
                        "telemetry_tags record earlier in the input)")


def run_keys(args: argparse.Namespace, state_dir: Path) -> int:
    try:
        key = (DeviceKey.load_or_create(state_dir) if args.keys_cmd == "init"
               else DeviceKey.load(state_dir))
    except (KeyFileError, OSError) as exc:
        print(f"linebridge keys: {exc}", file=sys.stderr)
        return 1
    if key is None:
        print(f"linebridge keys: no device key yet under {state_dir} (expected {key_path(state_dir)}); "
              "it is made on the gateway's first start (`linebridge run`), or now with "
              f"`linebridge keys init --state-dir {state_dir}`", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        print(json.dumps({"alg": "Ed25519", "kid": key.kid, "public_key": key.public.b64,
                          "file": str(key.path)}, sort_keys=True))
        return 0
    print(f"public key: {key.public.b64}")
    print(f"key id:     {key.kid}")
    print(f"algorithm:  Ed25519 (key file {key.path})")
    return 0


def _public_key(text: str) -> PublicKey:
    try:
        is_file = Path(text).is_file()
    except OSError:  # e.g. a name too long to be a path: it is the key itself
        is_file = False
    if is_file:
        text = Path(text).read_text(encoding="utf-8")
    return PublicKey.parse(text)


def _print_decoded(n: int, envelope: dict, tagsets: dict[str, list[str]]) -> None:
    """`--decode`: a verified telemetry record's values by tag name (its tags record came earlier)."""
    data = envelope.get("data") or {}
    if envelope.get("kind") == "telemetry_tags" and isinstance(data.get("tags"), list):
        tagsets[str(data.get("tagset"))] = [str(t) for t in data["tags"]]
    elif envelope.get("kind") == "telemetry":
        pairs = decode_telemetry(envelope, tagsets)
        shown = ("tag set " + str(data.get("tagset")) + " not seen yet") if pairs is None else \
            " ".join(f"{tag}={json.dumps(value)}" for tag, value in pairs)
        print(f"line {n} {envelope.get('source', {}).get('device', '-')} {envelope.get('ts', '-')} {shown}")


def run_verify(args: argparse.Namespace) -> int:
    try:
        key = _public_key(args.key)
    except (KeyFileError, OSError) as exc:
        print(f"linebridge verify: --key: {exc}", file=sys.stderr)
        return 2
    try:
        stream: IO[str] = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
    except OSError as exc:
        print(f"linebridge verify: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    ok = failed = 0
    tagsets: dict[str, list[str]] = {}
    with stream:
        for n, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                envelope = json.loads(line)
            except ValueError as exc:
                failed += 1
                print(f"FAIL line {n} event_id=- reason: not JSON ({exc})")
                continue
            reason = verify(envelope, key)
            if reason is None:
                ok += 1
                if args.decode and isinstance(envelope, dict):
                    _print_decoded(n, envelope, tagsets)
                continue
            failed += 1
            eid = envelope.get("id", "-") if isinstance(envelope, dict) else "-"
            print(f"FAIL line {n} event_id={eid} reason: {reason}")
    total = ok + failed
    if failed:
        print(f"{failed} of {total} envelope(s) failed verification (key id {key.kid})", file=sys.stderr)
        return 1
    print(f"ok: {ok} envelope(s) verified with key id {key.kid}")
    return 0
