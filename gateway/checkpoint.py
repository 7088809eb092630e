"""Signed checkpoints of the delivery journal's head: what makes truncation show from outside.

A checkpoint says "this gateway's journal had `n` entries and entry `n`'s link
was `link`", at `ts`, signed with the device key (Ed25519, like events). The
heartbeat carries the latest one in its retained status, so the broker and
whatever monitors it hold a copy the gateway's disk cannot take back. `check`
compares a checkpoint with the journal as it is now: fewer entries than the
checkpoint saw is a truncation, a different link at entry `n` a rewrite of
entry `n` or anything before it (each link covers the whole chain behind it).
It does not own the journal (`store.journal`) nor the heartbeat.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from gateway.events import iso_utc
from gateway.signing import DeviceKey, PublicKey, verify

SCHEMA = "linebridge.journal-checkpoint/1"


def make(head: dict[str, Any], key: DeviceKey, gateway: str, now: float) -> dict[str, Any]:
    """The signed checkpoint of `head` (`store.journal_head()`)."""
    return key.sign({"schema": SCHEMA, "gateway": gateway, "n": head["n"], "link": head["hash"],
                     "ts": iso_utc(now)})


def parse(text: str) -> dict[str, Any]:
    """A checkpoint from JSON text or a file holding it: the checkpoint itself, or a heartbeat
    status message carrying it under `journal` (as `mosquitto_sub -t <prefix>/status -C 1` prints it)."""
    try:
        is_file = Path(text).is_file()
    except OSError:
        is_file = False
    if is_file:
        text = Path(text).read_text(encoding="utf-8")
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if isinstance(body, dict) and isinstance(body.get("journal"), dict):
        body = body["journal"]
    if not isinstance(body, dict) or body.get("schema") != SCHEMA:
        raise ValueError(f"not a journal checkpoint (schema {SCHEMA}) nor a status message carrying one")
    return body


def check(checkpoint: dict[str, Any], public: PublicKey, head: dict[str, Any],
          link_of: Callable[[int], str | None]) -> tuple[bool, str]:
    """(ok, what was found) comparing a checkpoint with the journal's `head` and its links."""
    reason = verify(checkpoint, public)
    if reason is not None:
        return False, f"checkpoint signature: {reason}"
    n, ts = checkpoint.get("n"), checkpoint.get("ts")
    if not isinstance(n, int) or n < 0 or not isinstance(checkpoint.get("link"), str):
        return False, "checkpoint has no valid n and link"
    if head["n"] < n:
        return False, (f"TRUNCATED: the journal ends at entry {head['n']} but the checkpoint of {ts} "
                       f"saw {n} entries")
    if n == 0:
        return True, f"checkpoint of {ts} saw an empty journal; the journal has {head['n']} entries now"
    found = link_of(n)
    if found is None:
        return True, (f"checkpoint of {ts} (entry {n}) cannot be compared: entries up to "
                      f"{head['anchor']} were pruned since")
    if found != checkpoint["link"]:
        return False, (f"REWRITTEN: entry {n} (or an entry before it) differs from the checkpoint of {ts}")
    return True, f"checkpoint of {ts} matches: entry {n} as signed then, {head['n'] - n} entries written since"
