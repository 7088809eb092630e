"""The login throttle: failed logins counted per client address and per account, with growing waits.

A key (`address:10.0.0.7`, `account:admin`) may fail `attempts` times within
`window` seconds; the failure that reaches the limit locks the key for the
window, the next lock of the same key for twice as long, and so on up to
`MAX_LOCK_FACTOR` windows; a success, or a quiet spell as long as the longest
lock, forgets it. Checking and counting are one step: `begin` reserves an
attempt on every key under one lock and counts it as in flight, so forty
parallel requests cannot all pass the check before the first failure is
recorded. The table is bounded (`max_keys`): keys with nothing to remember
are dropped first, then the longest idle. It knows no passwords and logs
nothing; the login page logs each refusal.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

#: the longest lock, in windows (window 300 s: 5, 10, 20, 40, then 80 minutes)
MAX_LOCK_FACTOR = 16
#: how long an attempt in flight may hold a place before it no longer counts (a request that died)
IN_FLIGHT_S = 60.0


@dataclass
class _Key:
    failures: deque[float] = field(default_factory=deque)
    in_flight: deque[float] = field(default_factory=deque)   # start times of attempts not yet ended
    strikes: int = 0               # locks so far (each doubles the next)
    locked_until: float = 0.0
    last: float = 0.0


class Throttle:
    """At most `attempts` failures per key within `window` seconds; then that key waits, longer each time."""

    def __init__(self, attempts: int, window: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.attempts = attempts
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._keys: dict[str, _Key] = {}
        self._lock = threading.Lock()

    # -- the two steps of an attempt ---------------------------------------
    def begin(self, keys: Iterable[str]) -> float:
        """Reserve one attempt on every key: 0.0 when it may go ahead (then call `end`), else seconds to wait."""
        keys = list(keys)
        with self._lock:
            now = self.clock()
            wait = max((self._wait(k, now) for k in keys), default=0.0)
            if wait > 0:
                return wait
            for k in keys:
                s = self._key(k, now)
                s.in_flight.append(now)
                s.last = now
            return 0.0

    def end(self, keys: Iterable[str], ok: bool | None) -> None:
        """The attempt `begin` let through is over: a success forgets the keys, a failure counts,
        None (the attempt was not a guess, e.g. a form error) only gives its place back."""
        with self._lock:
            now = self.clock()
            for k in keys:
                s = self._keys.get(k)
                if s is None:
                    continue
                if s.in_flight:
                    s.in_flight.popleft()
                if ok is None:
                    continue
                if ok:
                    del self._keys[k]
                    continue
                s.last = now
                s.failures.append(now)
                self._expire(s, now)
                if len(s.failures) >= self.attempts:
                    s.locked_until = now + self.window * min(2 ** s.strikes, MAX_LOCK_FACTOR)
                    s.strikes += 1
                    s.failures.clear()

    # -- the older one-key interface (setup code) ---------------------------
    def wait_s(self, key: str) -> float:
        """Seconds `key` must wait before it may try again (0: it may)."""
        with self._lock:
            return self._wait(key, self.clock())

    def failed(self, key: str) -> None:
        """Count a failure of `key` that was not reserved with `begin` (none while it waits)."""
        if self.begin([key]) == 0.0:
            self.end([key], ok=False)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)

    # -- inside the lock ----------------------------------------------------
    def _expire(self, s: _Key, now: float) -> None:
        while s.failures and now - s.failures[0] > self.window:
            s.failures.popleft()
        while s.in_flight and now - s.in_flight[0] > IN_FLIGHT_S:
            s.in_flight.popleft()
        if s.strikes and now - max(s.last, s.locked_until) > self.window * MAX_LOCK_FACTOR:
            s.strikes = 0   # quiet for longer than the longest lock: start again at one window

    def _wait(self, key: str, now: float) -> float:
        s = self._keys.get(key)
        if s is None:
            return 0.0
        self._expire(s, now)
        if s.locked_until > now:
            return s.locked_until - now
        if len(s.failures) + len(s.in_flight) >= self.attempts:
            # the limit is filled by attempts still being checked: ask again in a moment
            return 1.0 if s.in_flight else max(0.0, self.window - (now - s.failures[0]))
        return 0.0

    def _key(self, key: str, now: float) -> _Key:
        s = self._keys.get(key)
        if s is None:
            if len(self._keys) >= self.max_keys:
                self._prune(now)
            s = self._keys[key] = _Key(last=now)
        return s

    def _prune(self, now: float) -> None:
        for k, s in list(self._keys.items()):
            self._expire(s, now)
            if not s.failures and not s.in_flight and s.locked_until <= now and not s.strikes:
                del self._keys[k]
        if len(self._keys) >= self.max_keys:   # still full: forget the longest idle quarter
            idle = sorted(self._keys, key=lambda k: self._keys[k].last)
            for k in idle[:max(1, len(idle) // 4)]:
                del self._keys[k]

    def __len__(self) -> int:
        return len(self._keys)
