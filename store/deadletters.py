"""Dead letters: what a sink gave up on, kept for a person to inspect, replay or discard.

A mixin of `store.queue.Store`: letters live in the `dead` database keyed by
sink and seq; a replay sends the event back to that one sink through the
`replay` database (the letter stays, marked, until the replay is delivered or
fails again), a discard drops it; both are recorded in the journal with who did
it.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

import lmdb

from store import counts, journal


class DeadLetters:
    """Dead-letter operations of the store (see `store.queue.Store`)."""

    def _letters(self, txn: lmdb.Transaction, sink: str | None,
                 kind: str | None) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """(key, letter) of every dead letter of `sink` (all sinks when None), of `kind` if given."""
        prefix = (sink.encode() + b"\0") if sink else b""
        cur = txn.cursor(db=self._db["dead"])
        if cur.set_range(prefix):
            for key, value in cur:
                if not key.startswith(prefix):
                    break
                letter = json.loads(value)
                if kind is None or letter["event"].get("kind") == kind:
                    yield key, letter

    def dead_letters(self, sink: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        with self._reading() as txn:
            return [letter for _, letter in self._letters(txn, sink, kind)]

    def replay(self, sink: str, seqs: Iterable[int] | None = None, kind: str | None = None,
               who: str = "cli") -> int:
        """Send dead letters of `sink` back to it (all, some seqs, or one kind); audited."""
        return self._write(lambda txn: self._move_dead(txn, sink, seqs, kind, "replay", who))

    def discard(self, sink: str, seqs: Iterable[int] | None = None, kind: str | None = None,
                who: str = "cli") -> int:
        """Drop dead letters of `sink` for good; each discard is recorded in the journal."""
        return self._write(lambda txn: self._move_dead(txn, sink, seqs, kind, "discard", who))

    def _move_dead(self, txn: lmdb.Transaction, sink: str, seqs: Iterable[int] | None, kind: str | None,
                   op: str, who: str) -> int:
        wanted = set(seqs) if seqs is not None else None
        picked = [(key, letter) for key, letter in self._letters(txn, sink, kind)
                  if not (op == "replay" and letter.get("replayed"))  # already on its way back
                  and (wanted is None or letter["seq"] in wanted)]
        now = self.clock()
        for key, letter in picked:
            if op == "replay":
                # the letter stays, marked, until the replay is delivered (then it goes)
                # or fails again (then its attempts count up)
                counts.put_row(txn, self._db, "replay", key, json.dumps(letter["event"], sort_keys=True).encode())
                counts.put_row(txn, self._db, "dead", key,
                               json.dumps(dict(letter, replayed=now), sort_keys=True).encode())
            else:
                counts.delete_row(txn, self._db, "dead", key)
                counts.delete_row(txn, self._db, "replay", key)
        if picked:
            journal.append(txn, self._db["journal"], self._db["meta"], [
                {"op": op, "sink": sink, "ts": round(now, 3), "by": who,
                 "items": [[letter["event"]["id"], letter["seq"], None] for _, letter in picked]}],
                self.options.journal_key)
        return len(picked)
