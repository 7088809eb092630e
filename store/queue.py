"""The LMDB store-and-forward queue: durable append, per-sink cursors, state, dead letters.

One LMDB environment holds named databases:

- `events`   8-byte big-endian seq -> event JSON (the event's `seq` filled in)
- `cursors`  sink name -> 8-byte seq of the last event that sink acknowledged
- `state`    key -> bytes: rule and sink state that must move in the same
             transaction as the events they produced or acknowledged
- `dedupe`   event id -> 8-byte seq: intake duplicate suppression
- `dead`     sink NUL seq -> dead letter JSON (event, error, attempts, times)
- `meta`     schema version, next seq

Every write transaction is synced to disk before the call returns (LMDB's
default durable commit). An event is deleted only after every configured sink
has acknowledged it or dead-lettered it. Calls are blocking: the gateway runs
them in a worker thread. Other processes may open the same store read-only.
"""
from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import lmdb

SCHEMA_VERSION = b"1"
_SEQ = struct.Struct(">Q")


class StoreError(Exception):
    """Base of store errors."""


class StoreFull(StoreError):
    """The store cannot take more events (map or disk full): hold state and retry later."""


def _k(seq: int) -> bytes:
    return _SEQ.pack(seq)


def _seq(raw: bytes) -> int:
    return _SEQ.unpack(raw)[0]


@dataclass(frozen=True)
class Stored:
    """An event read back from the queue."""

    seq: int
    event: dict[str, Any]


@dataclass(frozen=True)
class AppendResult:
    """Sequence numbers given to the appended events; `duplicates` were already known."""

    seqs: list[int]
    duplicates: int


class Store:
    """The queue over one LMDB environment at `path` (a directory)."""

    def __init__(self, path: Path | str, sinks: Iterable[str] = (), *,
                 map_size: int = 256 * 1024 * 1024, readonly: bool = False) -> None:
        self.path = Path(path)
        self.sinks = tuple(sinks)
        self.readonly = readonly
        if not readonly:
            self.path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(self.path), map_size=map_size, max_dbs=8, subdir=True,
                             readonly=readonly, lock=True, sync=True, metasync=True)
        create = not readonly
        self._events = self.env.open_db(b"events", create=create)
        self._cursors = self.env.open_db(b"cursors", create=create)
        self._state = self.env.open_db(b"state", create=create)
        self._dedupe = self.env.open_db(b"dedupe", create=create)
        self._dead = self.env.open_db(b"dead", create=create)
        self._meta = self.env.open_db(b"meta", create=create)
        if not readonly:
            with self.env.begin(write=True) as txn:
                txn.put(b"schema", SCHEMA_VERSION, db=self._meta, overwrite=False)

    # -- producers ---------------------------------------------------------

    def append(self, events: list[dict[str, Any]],
               state: Mapping[str, bytes] | None = None) -> AppendResult:
        """Durably append `events` and write `state` in the same transaction.

        Each event gets the next sequence number in its `seq` field. An event
        whose id is already known (intake dedupe) is skipped and counted. When
        this returns, the events and the state are on disk together.
        """
        seqs: list[int] = []
        dups = 0
        try:
            with self.env.begin(write=True) as txn:
                raw_next = txn.get(b"next_seq", db=self._meta)
                nxt = _seq(raw_next) if raw_next else 1
                for ev in events:
                    eid = ev["id"].encode("utf-8")
                    if txn.get(eid, db=self._dedupe) is not None:
                        dups += 1
                        continue
                    ev = dict(ev, seq=nxt)
                    body = json.dumps(ev, sort_keys=True, separators=(",", ":")).encode("utf-8")
                    txn.put(_k(nxt), body, db=self._events, append=True)
                    txn.put(eid, _k(nxt), db=self._dedupe)
                    seqs.append(nxt)
                    nxt += 1
                txn.put(b"next_seq", _k(nxt), db=self._meta)
                for key, value in (state or {}).items():
                    txn.put(key.encode("utf-8"), value, db=self._state)
        except lmdb.MapFullError as exc:
            raise StoreFull(f"store map full at {self.path}: {exc}") from exc
        except lmdb.Error as exc:
            if "No space left" in str(exc):
                raise StoreFull(f"disk full under {self.path}: {exc}") from exc
            raise
        return AppendResult(seqs, dups)

    def get_state(self, key: str) -> bytes | None:
        with self.env.begin() as txn:
            return txn.get(key.encode("utf-8"), db=self._state)

    def put_state(self, key: str, value: bytes) -> None:
        with self.env.begin(write=True) as txn:
            txn.put(key.encode("utf-8"), value, db=self._state)

    # -- consumers ---------------------------------------------------------

    def cursor(self, sink: str) -> int:
        with self.env.begin() as txn:
            raw = txn.get(sink.encode("utf-8"), db=self._cursors)
            return _seq(raw) if raw else 0

    def read(self, sink: str, limit: int = 100) -> list[Stored]:
        """The next `limit` events after `sink`'s cursor, in order."""
        out: list[Stored] = []
        with self.env.begin() as txn:
            raw = txn.get(sink.encode("utf-8"), db=self._cursors)
            after = _seq(raw) if raw else 0
            cur = txn.cursor(db=self._events)
            if not cur.set_range(_k(after + 1)):
                return out
            for key, value in cur:
                out.append(Stored(_seq(key), json.loads(value)))
                if len(out) >= limit:
                    break
        return out

    def ack(self, sink: str, seq: int, state: Mapping[str, bytes] | None = None,
            dead: list[tuple[Stored, str, int]] | None = None) -> None:
        """Advance `sink`'s cursor to `seq`, in one transaction with the sink's `state`.

        `dead` lists events the sink gives up on (event, error, attempts): they
        are kept as dead letters before the cursor moves past them. Events every
        configured sink has passed are then deleted.
        """
        now = time.time()
        with self.env.begin(write=True) as txn:
            key = sink.encode("utf-8")
            raw = txn.get(key, db=self._cursors)
            if raw and _seq(raw) > seq:
                raise StoreError(f"cursor of sink {sink!r} cannot move back from {_seq(raw)} to {seq}")
            for stored, error, attempts in dead or []:
                letter = {"sink": sink, "seq": stored.seq, "event": stored.event, "error": error,
                          "attempts": attempts, "first_failure": now, "last_failure": now}
                txn.put(key + b"\0" + _k(stored.seq),
                        json.dumps(letter, sort_keys=True).encode("utf-8"), db=self._dead)
            txn.put(key, _k(seq), db=self._cursors)
            for k, v in (state or {}).items():
                txn.put(k.encode("utf-8"), v, db=self._state)
            self._prune(txn)

    def _prune(self, txn: lmdb.Transaction) -> None:
        if not self.sinks:
            return
        low = min(_seq(r) if (r := txn.get(s.encode("utf-8"), db=self._cursors)) else 0
                  for s in self.sinks)
        cur = txn.cursor(db=self._events)
        if cur.first():
            while cur.key() and _seq(cur.key()) <= low:
                if not cur.delete():
                    break

    # -- inspection --------------------------------------------------------

    def last_seq(self) -> int:
        with self.env.begin() as txn:
            raw = txn.get(b"next_seq", db=self._meta)
            return (_seq(raw) - 1) if raw else 0

    def backlog(self, sink: str) -> int:
        """Events appended but not yet acknowledged or dead-lettered by `sink`."""
        return self.last_seq() - self.cursor(sink)

    def dead_letters(self, sink: str | None = None) -> list[dict[str, Any]]:
        prefix = sink.encode("utf-8") + b"\0" if sink else b""
        out = []
        with self.env.begin() as txn:
            cur = txn.cursor(db=self._dead)
            if cur.set_range(prefix):
                for key, value in cur:
                    if not key.startswith(prefix):
                        break
                    out.append(json.loads(value))
        return out

    def stored_count(self) -> int:
        with self.env.begin() as txn:
            return txn.stat(self._events)["entries"]

    def close(self) -> None:
        self.env.close()
