"""Group commit for asyncio producers: appends within a short window share one transaction.

Each device pipeline awaits `append(events, state)`; the committer collects
the requests that arrive while the previous commit is running (or within
`window` seconds of the first one), writes them with `Store.append_many` in
one synced LMDB transaction in a worker thread, and resolves every producer's
future with its own result, or with the store's refusal (`StoreFull`,
`BacklogFull`) so each producer holds its state and retries.
"""
from __future__ import annotations

import asyncio
from typing import Any, Mapping

from store.queue import AppendResult, Store


class GroupCommitter:
    """One writer task in front of a Store; safe to share between pipelines."""

    def __init__(self, store: Store, window: float = 0.002, max_events: int = 10_000) -> None:
        self.store = store
        self.window = window
        self.max_events = max_events
        self.commits = 0
        self.requests = 0
        self._queue: asyncio.Queue[tuple[list[dict[str, Any]], Mapping[str, bytes] | None,
                                         asyncio.Future[AppendResult]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def append(self, events: list[dict[str, Any]],
                     state: Mapping[str, bytes] | None = None) -> AppendResult:
        """Durably append; returns once the shared transaction is on disk."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="store-committer")
        fut: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((events, state, fut))
        return await fut

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            group = [first]
            count = len(first[0])
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
                continue
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
