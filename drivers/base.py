"""The contract every driver meets: samples with quality, health figures, config issues.

This module owns the small interface between a protocol driver and the rest of
the gateway (Telegraf-style: a driver is a class with `start`, `stop`, an async
stream of `Sample`s and a `health` snapshot), plus the helpers drivers use to
validate their own configuration section and report every problem with its key
path. It does not know about rules, the store or sinks.
"""
from __future__ import annotations

import abc
import enum
import random
import time
from dataclasses import dataclass
import asyncio
import inspect
import math
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol, TypeVar

T = TypeVar("T")


class Quality(str, enum.Enum):
    """Quality code carried by every sample; only `good` values are trusted."""

    GOOD = "good"
    BAD_COMM = "bad_comm"
    BAD_TIMEOUT = "bad_timeout"
    BAD_CONFIG = "bad_config"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of one tag. `value` is None unless the quality is good."""

    device: str
    tag: str
    value: Any
    quality: Quality
    source_ts: float  # UTC epoch seconds, when the value was read
    error: str | None = None
    #: where the value came from, beyond device and tag (`file x.csv row 4 column qty`,
    #: `topic a/b field count`), for a person checking a value a rule refused
    origin: str | None = None


@dataclass
class DriverHealth:
    """Figures a driver keeps about itself for the status page and heartbeat."""

    connected: bool = False
    last_good_read: float | None = None
    reads: int = 0
    errors: int = 0
    reconnects: int = 0
    last_error: str | None = None
    #: when `last_error` was set (epoch seconds); both clear when the device connects again
    last_error_at: float | None = None
    poll_latency_ms: float | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "last_error" and value != self.__dict__.get("last_error"):
            self.__dict__["last_error_at"] = None if value is None else time.time()
        elif name == "connected" and value and not self.__dict__.get("connected", True):
            self.last_error = None  # recovered: the error is history (the log keeps it)
        super().__setattr__(name, value)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ConfigIssue:
    """One configuration problem: the dotted key path and why it is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        # an overlong key or value (a megabyte pasted into a name) is cut, not echoed whole
        return f"{_cut(self.path, 200)}: {_cut(self.message, 400)}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class ConfigCollector:
    """Collects every problem of a config section instead of stopping at the first.

    `get` fetches and type-checks a key under a prefix; problems are appended to
    `issues` with the full key path, and a default is returned so validation can
    continue and report the rest.
    """

    def __init__(self) -> None:
        self.issues: list[ConfigIssue] = []

    def add(self, path: str, message: str) -> None:
        self.issues.append(ConfigIssue(path, message))

    def unknown_keys(self, section: dict[str, Any], path: str, allowed: set[str]) -> None:
        for key in section:
            if key not in allowed:
                self.add(f"{path}.{key}" if path else key,
                         f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def get(self, section: dict[str, Any], path: str, key: str, kind: type | tuple[type, ...],
            default: Any = None, required: bool = False,
            choices: tuple[Any, ...] | None = None,
            minimum: float | None = None, maximum: float | None = None) -> Any:
        full = f"{path}.{key}" if path else key
        if key not in section:
            if required:
                self.add(full, "is required")
            return default
        value = section[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            self.add(full, f"must be {_kind_name(kinds)}, got {value!r}")
            return default
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds):
            self.add(full, f"must be {_kind_name(kinds)}, got {value!r}")
            return default
        if choices is not None and value not in choices:
            self.add(full, f"must be one of {', '.join(map(str, choices))}, got {value!r}")
            return default
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            lo = "" if minimum is None else _num(minimum)
            hi = "" if maximum is None else _num(maximum)
            self.add(full, f"must be {lo}..{hi}, got {_num(value)}")
            return default
        return value


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             dict: "a table", list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


class Backoff:
    """Exponential backoff with jitter and a cap, for reconnects and retries.

    `attempt` counts consecutive failures (for the logs) and may grow for as long
    as a peer stays away; the exponent stops where the delay reaches the cap, so
    `next_delay()` never overflows, however many failures in a row.
    """

    def __init__(self, initial: float = 0.5, cap: float = 30.0, factor: float = 2.0,
                 rng: Callable[[], float] = random.random) -> None:
        self.initial, self.cap, self.factor, self._rng = initial, cap, factor, rng
        self.attempt = 0
        grows = factor > 1.0 and 0.0 < initial < cap
        #: the first exponent whose delay reaches the cap: from there on the ceiling is the cap
        self._top = math.ceil(math.log(cap / initial) / math.log(factor)) if grows else 0
        self._flat = cap if grows else min(cap, initial)

    def next_delay(self) -> float:
        if self.attempt < self._top:  # factor ** attempt < cap / initial: finite
            ceiling = min(self.cap, self.initial * self.factor ** self.attempt)
        else:
            ceiling = self._flat
        self.attempt += 1
        # "equal jitter": never zero, never above the cap
        return ceiling / 2 + self._rng() * ceiling / 2

    def reset(self) -> None:
        self.attempt = 0


class Stopped(Exception):
    """`stop()` was called while a driver was waiting; the poll loop unwinds quietly."""


async def bounded(awaitable: Awaitable[T], timeout: float | None, stop: asyncio.Event | None, *,
                  keep_result: bool = False) -> T:
    """Await with a timeout that also ends early, raising `Stopped`, once `stop` is set.

    Every driver waits on I/O this way, so `stop()` is prompt even during a hung
    read. When the awaitable and the stop finish together, stop wins, unless
    `keep_result` (a lock that was acquired must be handed back to be released).
    A timeout raises asyncio.TimeoutError; `timeout=None` waits without one.
    """
    if stop is None or stop.is_set():
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise Stopped()
    task = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopper}, timeout=None if timeout is None else max(timeout, 0),
                                     return_when=asyncio.FIRST_COMPLETED)
        if task in done and (keep_result or stopper not in done):
            return task.result()
        if stopper in done:  # stop() wins, even over a failure it caused itself
            raise Stopped()
        raise asyncio.TimeoutError()
    finally:
        for fut in (task, stopper):
            if not fut.done():
                fut.cancel()
        await asyncio.gather(task, stopper, return_exceptions=True)


class StateStore(Protocol):
    """Durable key-value state the gateway lends a driver (blocking calls: use a thread).

    Keys are private to the driver instance. A driver that must remember what it
    already delivered across restarts (the file-drop driver's processed files)
    keeps it here; writes are synced to disk before `put` returns.
    """

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...


class Driver(abc.ABC):
    """A device driver: one instance per configured device.

    Lifecycle: `await start()`, then iterate `samples()` until `await stop()`.
    A driver never raises out of `samples()` for a device fault: it yields
    samples with a bad quality and reconnects by itself with backoff.

    Hand-off contract: the gateway pulls the next batch only after the previous
    one has been fully handled (its events durably stored). So when a driver's
    generator resumes after a `yield`, that batch is safe, and the driver may
    commit its own progress (move a processed file, acknowledge a message).
    """

    #: the `type` value in the config that selects this driver
    type_name: str = ""
    #: durable state lent by the gateway before `start()`; None in bare tests
    state: StateStore | None = None

    def __init__(self, name: str, config: Any, clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self.health = DriverHealth()

    @classmethod
    @abc.abstractmethod
    def parse_config(cls, section: dict[str, Any], path: str,
                     issues: ConfigCollector) -> Any:
        """Validate the device's config section; report problems to `issues`."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Prepare the driver; must not block on an unreachable device."""

    @abc.abstractmethod
    def samples(self) -> AsyncIterator[list[Sample]]:
        """Yield one batch of samples per poll (or per change notification)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop polling and close connections; safe to call twice."""
