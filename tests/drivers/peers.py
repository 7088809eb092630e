"""Test helpers every driver's tests share: a TCP peer that never answers, and waiting on sample batches."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable

from drivers.base import Sample
from tests.helpers import free_port

__all__ = ["SilentServer", "by_tag", "free_port", "next_batch"]


class SilentServer:
    """Accepts TCP connections, reads whatever comes, and never answers."""

    def __init__(self) -> None:
        self.port = 0
        self.connections = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        while await reader.read(1024):
            pass

    async def __aenter__(self) -> "SilentServer":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        for writer in self._writers:
            writer.close()
        self._server.close()
        await self._server.wait_closed()


async def next_batch(samples: AsyncIterator[list[Sample]], condition: Callable[[list[Sample]], bool],
                     timeout: float = 8.0, seen: list[list[Sample]] | None = None) -> list[Sample]:
    """The first batch from `samples` meeting `condition`, or fail after `timeout` s (all go to `seen`)."""
    async def scan() -> list[Sample]:
        async for batch in samples:
            if seen is not None:
                seen.append(batch)
            if condition(batch):
                return batch
        raise AssertionError("the sample stream ended before the condition was met")
    try:
        return await asyncio.wait_for(scan(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"no matching batch within {timeout} s; seen: {seen}") from None


def by_tag(batch: list[Sample]) -> dict[str, Sample]:
    return {s.tag: s for s in batch}
