"""Group commit for asyncio producers: appends within a short window share one transaction.

Each device pipeline awaits `append(events, state)`; the committer collects
the requests that arrive while the previous commit is running (or within
`window` seconds of the first one), writes them with `Store.append_many` in
one synced LMDB transaction in a worker thread, and resolves every producer's
future with its own result, or with the store's refusal (`StoreFull`,
`BacklogFull`) so each producer holds its state and retries.

In the gateway the writer is `run(stop)`, a long-lived task its owner (the
gateway's task supervisor) restarts if it dies; a group taken when it died is
failed, never left waiting, and what is still queued is written by the next
run. Without an owner (tests, benchmarks) the first `append` starts the writer
itself.
"""
from __future__ import annotations

import asyncio
from typing import Any, Mapping

from store.queue import AppendResult, Store

#: one producer's request: its events, the state to commit with them, and the future it awaits
_Request = tuple[list[dict[str, Any]], Mapping[str, bytes] | None, "asyncio.Future[AppendResult]"]


class GroupCommitter:
    """One writer task in front of a Store; safe to share between pipelines."""

    def __init__(self, store: Store, window: float = 0.002, max_events: int = 10_000) -> None:
        self.store = store
        self.window = window
        self.max_events = max_events
        self.commits = 0
        self.requests = 0
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._owned = False  # `run` is called by an owner: never start a writer here

    async def append(self, events: list[dict[str, Any]],
                     state: Mapping[str, bytes] | None = None) -> AppendResult:
        """Durably append; returns once the shared transaction is on disk."""
        if not self._owned and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run(None), name="store-committer")
        fut: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((events, state, fut))
        return await fut

    async def run(self, stop: asyncio.Event) -> None:
        """The writer, until `stop` is set (then what is queued is written first)."""
        self._owned = True
        await self._run(stop)

    async def _run(self, stop: asyncio.Event | None) -> None:
        while True:
            if stop is not None and self._queue.empty():
                if stop.is_set():
                    return
                first = await self._next(stop)
                if first is None:
                    continue
            else:
                first = await self._queue.get()
            group = [first]
            try:
                await self._commit(group)
            except BaseException as exc:  # the writer dies: no producer of its group is left waiting
                for _, _, fut in group:
                    if not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError("the writer stopped"))
                raise

    async def _next(self, stop: asyncio.Event) -> _Request | None:
        """The next request, or None once `stop` is set first."""
        getter = asyncio.ensure_future(self._queue.get())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not getter.done():
                getter.cancel()
        return getter.result() if getter.done() and not getter.cancelled() else None

    async def _commit(self, group: list[_Request]) -> None:
        """Gather more requests into `group` (in place) for a moment, then write them in one transaction."""
        count = len(group[0][0])
        deadline = asyncio.get_running_loop().time() + self.window
        while count < self.max_events:
            timeout = deadline - asyncio.get_running_loop().time()
            try:
                item = self._queue.get_nowait() if timeout <= 0 else \
                    await asyncio.wait_for(self._queue.get(), timeout)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            group.append(item)
            count += len(item[0])
        try:
            results = await asyncio.to_thread(self.store.append_many, [(e, s) for e, s, _ in group])
        except Exception as exc:  # the store refused: every producer in the group holds and retries
            for _, _, fut in group:
                if not fut.done():
                    fut.set_exception(exc)
            return
        self.commits += 1
        self.requests += len(group)
        for (_, _, fut), result in zip(group, results):
            if not fut.done():
                fut.set_result(result)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
