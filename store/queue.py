"""The LMDB store-and-forward queue: durable append, per-sink cursors, quotas, dead letters.

One LMDB environment under the state directory holds named databases:

- `ev:business`, `ev:telemetry`  8-byte big-endian seq -> event JSON, one queue per class
- `cursors`   `sink NUL class` -> seq of the last event the sink passed in that class
- `replay`    `sink NUL seq` -> event: dead letters a person sent back to one sink
- `dead`      `sink NUL seq` -> dead letter (event, error, attempts, first/last failure)
- `held`      `sink NUL seq` -> an event the sink set aside to wait in its lane (see `store.held`)
- `state`     key -> bytes: rule, sink and driver state that must move in the same
              transaction as the events they produced or acknowledged
- `dedupe`, `dedupe_log`, `dedupe_exp`  intake duplicate suppression by event id, with expiry
  (see `store.dedupe`)
- `journal`   the hash-chained delivery record (see `store.journal`)
- `meta`      schema version, next seq, per-class counts and bytes, drop counters

Every write transaction is synced before the call returns. Sequence numbers are
global and monotonic. A sink reads, in order, the classes it wants (business
events, telemetry or both); an event is deleted once every sink that wants its
class has acknowledged or dead-lettered it. Business events are never evicted:
at their cap `append` raises `BacklogFull`. Telemetry at its cap evicts its
oldest, counted. A full map grows up to `max_map_size`; beyond that, or on a
full disk, `append` raises `StoreFull` and nothing is half written. All calls
block: the gateway runs them in worker threads. Other processes may open the
same store read-only (`readonly=True`) while the gateway runs.
"""
from __future__ import annotations

import errno
import hashlib
import json
import json.encoder
import struct
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import lmdb

from store import counts, journal
from store.dedupe import Dedupe, Pending
from store.deadletters import DeadLetters
from store.held import Held, HeldEvent
from store.views import Inspection
from store.layout import CLASSES, TELEMETRY_KINDS, Quota, event_class, k as _k, seq_of as _seq

__all__ = ["AppendResult", "BacklogFull", "CLASSES", "HeldEvent", "Quota", "Store", "StoreError", "StoreFull",
           "StoreOptions", "Stored", "event_class"]

SCHEMA_VERSION = b"2"
_pack = struct.Struct(">Q").pack          # store.layout.k without the call
_blake2b = hashlib.blake2b               # store.dedupe.digest, inline in the append loop
_DEDUPE_PRUNE_PER_TXN = 1000


class StoreError(Exception):
    """Base of store errors."""


class StoreFull(StoreError):
    """The store cannot take more (map at its maximum or disk full): hold and retry later."""


class BacklogFull(StoreFull):
    """Business events reached their cap: refused, never evicted. Raise `backlog_full`."""


@dataclass(frozen=True)
class Stored:
    """An event read back for a sink; `cls` is its class, or `replay` for a replayed dead letter."""

    seq: int
    event: dict[str, Any]
    cls: str = "business"


@dataclass(frozen=True)
class AppendResult:
    """Sequence numbers given to the appended events; `duplicates` were already known."""

    seqs: list[int]
    duplicates: int
    evicted: int = 0
    unrouted: int = 0


@dataclass
class StoreOptions:
    map_size: int = 64 * 1024 * 1024
    max_map_size: int = 1024 * 1024 * 1024
    quotas: dict[str, Quota] = field(default_factory=lambda: {c: Quota() for c in CLASSES})
    dedupe_ttl: float = 7 * 24 * 3600.0
    journal_keep: int = 1_000_000
    #: the journal's HMAC key (see `store.journal`); None writes unkeyed entries and refuses a keyed journal
    journal_key: bytes | None = field(default=None, repr=False)


class Store(DeadLetters, Held, Inspection):
    """The queue over one LMDB environment at `path` (a directory).

    `sinks` maps each sink name to the classes it wants; a plain list of names
    means every sink wants business events only.
    """

    def __init__(self, path: Path | str, sinks: Mapping[str, Iterable[str]] | Iterable[str] = (), *,
                 options: StoreOptions | None = None, readonly: bool = False,
                 map_size: int | None = None, clock: Any = time.time) -> None:
        self.path = Path(path)
        self.options = options or StoreOptions()
        if map_size is not None:
            self.options.map_size = map_size
            self.options.max_map_size = max(self.options.max_map_size, map_size) if options else map_size
        if isinstance(sinks, Mapping):
            self.sinks = {name: frozenset(classes) for name, classes in sinks.items()}
        else:
            self.sinks = {name: frozenset({"business"}) for name in sinks}
        self.readonly = readonly
        self.clock = clock
        self._lock = threading.Lock()     # every transaction of this process, and a map resize alone
        if readonly and not (self.path / "data.mdb").exists():
            raise StoreError(f"no store at {self.path}")
        if not readonly:
            self.path.mkdir(parents=True, exist_ok=True)
        size = max(self.options.map_size, _existing_size(self.path))
        self.env = lmdb.open(str(self.path), map_size=size, max_dbs=16, subdir=True,
                             readonly=readonly, lock=True, sync=True, metasync=True)
        create = not readonly
        names = ["ev:business", "ev:telemetry", "cursors", "replay", "dead", "state", "dedupe",
                 "dedupe_exp", "journal", "meta"]
        try:
            self._db = {n: self.env.open_db(n.encode(), create=create) for n in names}
        except lmdb.NotFoundError as exc:
            raise StoreError(f"{self.path} is not a Linebridge store (or an older layout): {exc}") from exc
        for name in ("held", "dedupe_log"):  # added in schema 2's lifetime: a read-only view of an older store has none
            try:
                self._db[name] = self.env.open_db(name.encode(), create=create)
            except lmdb.NotFoundError:
                pass
        self._dedupe: Dedupe | None = None
        self._pending: Pending | None = None
        if not readonly:
            self._dedupe = Dedupe(self._db)
            with self.env.begin(write=True) as txn:
                txn.put(b"schema", SCHEMA_VERSION, db=self._db["meta"], overwrite=False)
                if txn.get(counts.MARKER, db=self._db["meta"]) is None:
                    counts.recount(txn, self._db, self._all_cursors(txn))   # a store of an older version
                raw = txn.get(b"next_seq", db=self._db["meta"])
                self._dedupe.open(txn, _seq(raw) if raw else 1)

    def _all_cursors(self, txn: lmdb.Transaction) -> dict[tuple[str, str], int]:
        out = {}
        for key, value in txn.cursor(db=self._db["cursors"]):
            sink, _, cls = key.decode("utf-8").partition("\0")
            out[(sink, cls)] = _seq(value)
        return out

    @contextmanager
    def _reading(self) -> Iterator[lmdb.Transaction]:
        """A read transaction (status reads are counters: the lock is held for microseconds)."""
        with self._lock, self._begin() as txn:
            yield txn

    def route(self, sinks: Mapping[str, Iterable[str]]) -> None:
        """Replace the routing table while the store is open (a sink added or removed live).

        The same as reopening the store with these `sinks`: a sink new to the
        table reads from its stored cursor (0 if it never had one: every event
        still held), a sink left out keeps its cursor and dead letters on disk
        but no longer holds events back. Takes effect from the next call.
        """
        routes = {name: frozenset(classes) for name, classes in sinks.items()}
        changed = [name for name, classes in routes.items() if self.sinks.get(name) != classes]
        if changed and not self.readonly:
            # a sink that was away kept no count of what the others pruned: count it again
            self._write(lambda txn: counts.recount(txn, self._db, self._all_cursors(txn), changed))
        with self._lock:
            self.sinks = routes

    def _begin(self, write: bool = False) -> lmdb.Transaction:
        try:
            return self.env.begin(write=write)
        except lmdb.MapResizedError:
            # another process (the running gateway) grew the map: adopt its size
            self.env.set_mapsize(0)
            return self.env.begin(write=write)

    # -- writing -------------------------------------------------------------

    def _write(self, fn: Any) -> Any:
        """Run `fn(txn)` in one durable write transaction, growing the map when it is full."""
        while True:
            try:
                with self._lock:
                    pending = self._pending = self._dedupe.begin() if self._dedupe else None
                    with self._begin(write=True) as txn:
                        result = fn(txn)
                    if pending is not None and self._dedupe is not None:   # committed: memory follows the disk
                        self._dedupe.apply(pending)
                    return result
            except lmdb.MapFullError as exc:
                if not self._grow():
                    raise StoreFull(f"store map full at {self.path} "
                                    f"({self.env.info()['map_size'] // 2**20} MiB, the configured maximum)") from exc
            except lmdb.Error as exc:
                if _is_enospc(exc):
                    raise StoreFull(f"disk full under {self.path}: {exc}") from exc
                if _is_short_write(exc):
                    raise StoreFull(f"disk full (or failing) under {self.path}: {exc}") from exc
                raise

    def _grow(self) -> bool:
        current = self.env.info()["map_size"]
        if current >= self.options.max_map_size:
            return False
        with self._lock:   # LMDB: no transaction of this process may be open during a resize
            self.env.set_mapsize(min(current * 2, self.options.max_map_size))
        return True

    def append(self, events: list[dict[str, Any]],
               state: Mapping[str, bytes] | None = None) -> AppendResult:
        """Durably append `events` and write `state` in the same transaction.

        Each event gets the next sequence number in its `seq` field. An event
        whose id is already known (intake dedupe) is skipped and counted. When
        this returns, the events and the state are on disk together.
        """
        return self._write(lambda txn: self._append(txn, events, state or {}))

    def append_many(self, requests: list[tuple[list[dict[str, Any]], Mapping[str, bytes] | None]]
                    ) -> list[AppendResult]:
        """Group commit: several producers' appends in one transaction and one sync.

        All or nothing: if the store refuses (full, at a cap), none is written.
        """
        return self._write(lambda txn: [self._append(txn, ev, st or {}) for ev, st in requests])

    def _append(self, txn: lmdb.Transaction, events: list[dict[str, Any]],
                state: Mapping[str, bytes]) -> AppendResult:
        meta = self._db["meta"]
        now = self.clock()
        get = txn.get
        nxt = first = _seq(raw) if (raw := get(b"next_seq", db=meta)) else 1
        seqs: list[int] = []
        dups = unrouted = evicted = 0
        added: dict[str, list[int]] = {c: [0, 0] for c in CLASSES}
        rows: dict[str, list[tuple[bytes, bytes]]] = {c: [] for c in CLASSES}
        digests: list[bytes] = []
        seen: set[bytes] = set()
        dedupe, pending = self._dedupe, self._pending
        assert dedupe is not None and pending is not None, "append on a read-only store"
        # the per-event loop, with its lookups bound once (see store.dedupe.Dedupe.known for the rule)
        recent, fresh, dropped, index = dedupe.recent, pending.added, pending.dropped, dedupe.index
        routed = {cls for wanted in self.sinks.values() for cls in wanted} if self.sinks else set(CLASSES)
        for ev in events:
            cls = "telemetry" if ev.get("kind") in TELEMETRY_KINDS else "business"
            if cls not in routed:
                unrouted += 1
                continue
            d = _blake2b(ev["id"].encode("utf-8"), digest_size=16).digest()
            if d in seen or d in fresh or (d not in dropped and (d in recent[d[0]] or get(d, db=index) is not None)):
                dups += 1
                continue
            seen.add(d)
            body = encode(ev, nxt)
            rows[cls].append((_pack(nxt), body))
            digests.append(d)
            counted = added[cls]
            counted[0] += 1
            counted[1] += len(body)
            seqs.append(nxt)
            nxt += 1
        for cls, items in rows.items():
            if items:
                txn.cursor(db=self._db[f"ev:{cls}"]).putmulti(items, append=True)
        dedupe.add(txn, pending, first, int((now + self.options.dedupe_ttl) * 1000), digests)
        for cls, (count, size) in added.items():
            if count:
                self._count(txn, cls, count, size)
                evicted += self._enforce_quota(txn, cls)
        txn.put(b"next_seq", _k(nxt), db=meta)
        for key, value in state.items():
            txn.put(key.encode("utf-8"), value, db=self._db["state"])
        dedupe.prune(txn, pending, int(now * 1000), _DEDUPE_PRUNE_PER_TXN)
        if unrouted:
            self._bump(txn, "unrouted", unrouted)
        return AppendResult(seqs, dups, evicted, unrouted)

    def _count(self, txn: lmdb.Transaction, cls: str, count: int, size: int) -> None:
        meta = self._db["meta"]
        cur = json.loads(txn.get(f"usage:{cls}".encode(), db=meta) or b'{"events": 0, "bytes": 0}')
        cur["events"] += count
        cur["bytes"] += size
        txn.put(f"usage:{cls}".encode(), json.dumps(cur).encode(), db=meta)

    def _usage(self, txn: lmdb.Transaction, cls: str) -> dict[str, int]:
        return json.loads(txn.get(f"usage:{cls}".encode(), db=self._db["meta"]) or b'{"events": 0, "bytes": 0}')

    def _bump(self, txn: lmdb.Transaction, counter: str, n: int) -> None:
        meta = self._db["meta"]
        key = f"count:{counter}".encode()
        txn.put(key, _k((_seq(raw) if (raw := txn.get(key, db=meta)) else 0) + n), db=meta)

    def _enforce_quota(self, txn: lmdb.Transaction, cls: str) -> int:
        quota = self.options.quotas.get(cls, Quota())
        usage = self._usage(txn, cls)
        over = ((quota.max_events and usage["events"] > quota.max_events)
                or (quota.max_bytes and usage["bytes"] > quota.max_bytes))
        if not over:
            return 0
        if cls == "business":
            # abort the whole transaction: nothing of this append is written
            raise BacklogFull(f"business backlog at its cap ({usage['events']} events, {usage['bytes']} bytes; "
                              f"cap {quota.max_events or '-'} events, {quota.max_bytes or '-'} bytes)")
        evicted = 0
        passed = {s: self._cursor(txn, s, cls) for s, wanted in self.sinks.items() if cls in wanted}
        cur = txn.cursor(db=self._db[f"ev:{cls}"])
        while ((quota.max_events and usage["events"] > quota.max_events)
               or (quota.max_bytes and usage["bytes"] > quota.max_bytes)) and cur.first():
            usage["events"] -= 1
            usage["bytes"] -= len(cur.value())
            seq = _seq(cur.key())
            for sink, at in passed.items():
                if seq <= at:
                    counts.add(txn, self._db["meta"], counts.behind_name(sink, cls), -1)
            cur.delete()
            evicted += 1
        txn.put(f"usage:{cls}".encode(), json.dumps(usage).encode(), db=self._db["meta"])
        self._bump(txn, f"evicted:{cls}", evicted)
        return evicted

    def note(self, sink: str, op: str, who: str, items: list[list[Any]],
             state: Mapping[str, bytes] | None = None) -> None:
        """Record a person's action at `sink` (e.g. a label `reprint`) in the journal, with `who` and
        the time, and write the sink's `state` in the same transaction."""
        def write(txn: lmdb.Transaction) -> None:
            for key, value in (state or {}).items():
                txn.put(key.encode("utf-8"), value, db=self._db["state"])
            journal.append(txn, self._db["journal"], self._db["meta"], [
                {"op": op, "sink": sink, "ts": round(self.clock(), 3), "by": who, "items": items}],
                self.options.journal_key)
        self._write(write)

    def get_state(self, key: str) -> bytes | None:
        with self._reading() as txn:
            return txn.get(key.encode("utf-8"), db=self._db["state"])

    def put_state(self, key: str, value: bytes) -> None:
        self._write(lambda txn: txn.put(key.encode("utf-8"), value, db=self._db["state"]))

    # -- reading and acknowledging -----------------------------------------------

    def _cursor(self, txn: lmdb.Transaction, sink: str, cls: str) -> int:
        raw = txn.get(f"{sink}\0{cls}".encode(), db=self._db["cursors"])
        return _seq(raw) if raw else 0

    def cursor(self, sink: str, cls: str = "business") -> int:
        with self._reading() as txn:
            return self._cursor(txn, sink, cls)

    def read(self, sink: str, limit: int = 100) -> list[Stored]:
        """The sink's next events: replayed dead letters first, then its classes in seq order."""
        out: list[Stored] = []
        wanted = self.sinks.get(sink, frozenset({"business"}))
        with self._reading() as txn:
            prefix = sink.encode() + b"\0"
            cur = txn.cursor(db=self._db["replay"])
            if cur.set_range(prefix):
                for key, value in cur:
                    if not key.startswith(prefix) or len(out) >= limit:
                        break
                    out.append(Stored(_seq(key[len(prefix):]), _event(value), "replay"))
            merged: list[Stored] = []
            for cls in CLASSES:
                if cls not in wanted:
                    continue
                cur = txn.cursor(db=self._db[f"ev:{cls}"])
                if cur.set_range(_k(self._cursor(txn, sink, cls) + 1)):
                    for n, (key, value) in enumerate(cur):
                        if n >= limit - len(out):
                            break
                        merged.append(Stored(_seq(key), _event(value), cls))
            merged.sort(key=lambda s: s.seq)
        return out + merged[: max(0, limit - len(out))]

    def ack(self, sink: str, done: list[Stored], state: Mapping[str, bytes] | None = None,
            dead: list[tuple[Stored, str]] | None = None,
            receipts: Mapping[str, str] | None = None,
            hold: list[tuple[Stored, str, str, float]] | None = None) -> None:
        """Acknowledge `done` (with `hold`, a prefix of what `read` gave) for `sink`, in one transaction.

        `dead` lists the events of `done` the sink gives up on, with the error:
        they become dead letters. `receipts` maps event ids to the remote
        reference (e.g. `mrp.workorder,7`) for the journal. `state` is the
        sink's state that must move with its cursor. `hold` lists (event, lane,
        reason, since) the sink sets aside to wait (see `store.held`): the cursor
        passes them too. Events every interested sink has passed are then deleted.
        """
        self._write(lambda txn: self._ack(txn, sink, done, state or {}, dead or [], receipts or {}, hold or []))

    def _ack(self, txn: lmdb.Transaction, sink: str, done: list[Stored], state: Mapping[str, bytes],
             dead: list[tuple[Stored, str]], receipts: Mapping[str, str],
             hold: list[tuple[Stored, str, str, float]]) -> None:
        top: dict[str, int] = {}
        for s in [*done, *(h[0] for h in hold)]:
            if s.cls != "replay":
                top[s.cls] = max(top.get(s.cls, 0), s.seq)
        for cls, seq in top.items():
            current = self._cursor(txn, sink, cls)
            if seq < current:
                raise StoreError(f"cursor of sink {sink!r} ({cls}) cannot move back from {current} to {seq}")
            counts.add(txn, self._db["meta"], counts.behind_name(sink, cls),
                       counts.count_between(txn, self._db[f"ev:{cls}"], current, seq))
            txn.put(f"{sink}\0{cls}".encode(), _k(seq), db=self._db["cursors"])
        self._hold(txn, sink, hold)
        self._settle(txn, sink, done, state, dead, receipts)
        self._prune_events(txn)

    def _settle(self, txn: lmdb.Transaction, sink: str, done: list[Stored], state: Mapping[str, bytes],
                dead: list[tuple[Stored, str]], receipts: Mapping[str, str]) -> None:
        """What `done` became for `sink`: delivered or dead letters (`dead`), the state, the journal."""
        now = self.clock()
        dead_ids = {s.event["id"] for s, _ in dead}
        for s in done:
            if s.cls == "replay":
                key = f"{sink}\0".encode() + _k(s.seq)
                counts.delete_row(txn, self._db, "replay", key)
                if s.event["id"] not in dead_ids:
                    counts.delete_row(txn, self._db, "dead", key)  # the replay went through
        for stored, error in dead:
            key = f"{sink}\0".encode() + _k(stored.seq)
            old = json.loads(txn.get(key, db=self._db["dead"]) or b"null")
            letter = {"sink": sink, "seq": stored.seq, "event": stored.event, "error": error, "replayed": None,
                      "attempts": (old["attempts"] + 1) if old else 1,
                      "first_failure": old["first_failure"] if old else now, "last_failure": now}
            counts.put_row(txn, self._db, "dead", key, json.dumps(letter, sort_keys=True).encode())
        for key, value in state.items():
            txn.put(key.encode("utf-8"), value, db=self._db["state"])
        items: dict[str, list[list[Any]]] = {"delivered": [], "dead_letter": []}
        for s in done:
            if s.cls == "telemetry":
                continue  # the journal is for business deliveries
            op = "dead_letter" if s.event["id"] in dead_ids else "delivered"
            items[op].append([s.event["id"], s.seq, receipts.get(s.event["id"])])
        journal.append(txn, self._db["journal"], self._db["meta"], [
            {"op": op, "sink": sink, "ts": round(now, 3), "items": rows} for op, rows in items.items() if rows],
            self.options.journal_key)
        journal.prune(txn, self._db["journal"], self._db["meta"], self.options.journal_keep, self.options.journal_key)

    def _prune_events(self, txn: lmdb.Transaction) -> None:
        for cls in CLASSES:
            interested = [s for s, wanted in self.sinks.items() if cls in wanted]
            if not interested:
                continue
            low = min(self._cursor(txn, s, cls) for s in interested)
            cur = txn.cursor(db=self._db[f"ev:{cls}"])
            count = size = 0
            if cur.first():
                while cur.key() and _seq(cur.key()) <= low:
                    count += 1
                    size += len(cur.value())
                    if not cur.delete():
                        break
            if count:
                self._count(txn, cls, -count, -size)
                for sink in interested:   # each pruned event lay at or behind every interested cursor
                    counts.add(txn, self._db["meta"], counts.behind_name(sink, cls), -count)

    def close(self) -> None:
        self.env.close()


_ENCODER = json.JSONEncoder(separators=(",", ":"))
# the C encoder behind `json.dumps`, made once (json makes one per call); None where json has no C part
_make = getattr(json.encoder, "c_make_encoder", None)
_ascii = getattr(json.encoder, "c_encode_basestring_ascii", None)
_C_ENCODER: Any = (_make(None, _ENCODER.default, _ascii, None, ":", ",", False, False, True)
                   if _make is not None and _ascii is not None else None)


def encode(event: Mapping[str, Any], seq: int) -> bytes:
    """The stored bytes of `event` given sequence number `seq` (compact JSON, `seq` last).

    The same bytes as `json.dumps(dict(event, seq=seq), separators=(",", ":"))`
    without copying the event: its own text with `seq` spliced in before the end.
    """
    if type(event) is not dict or "seq" in event or not event:
        return _ENCODER.encode(dict(event, seq=seq)).encode("utf-8")
    text = "".join(_C_ENCODER(event, 0)) if _C_ENCODER is not None else _ENCODER.encode(event)
    return f'{text[:-1]},"seq":{seq}}}'.encode("utf-8")


def _event(value: bytes) -> Any:
    """A stored event; bytes that are no longer JSON come back as `{"unreadable": text}`, so the
    sink's signature check dead-letters them instead of the read failing forever."""
    try:
        return json.loads(value)
    except ValueError:
        return {"unreadable": bytes(value).decode("utf-8", "replace")}


def _existing_size(path: Path) -> int:
    try:
        return (path / "data.mdb").stat().st_size
    except OSError:
        return 0


def _is_enospc(exc: lmdb.Error) -> bool:
    return getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc)


def _is_short_write(exc: lmdb.Error) -> bool:
    """LMDB reports a page write the disk cut short (the usual way a full disk shows) as EIO."""
    return getattr(exc, "errno", None) == errno.EIO or "Input/output error" in str(exc)
