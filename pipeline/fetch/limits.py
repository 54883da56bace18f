"""The fetch stage's shared bounds: a FIFO byte budget, and the guard that stops a run on a store that
refuses every request (wrong credentials, unknown bucket) after a handful of tries.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pipeline.errors import FatalApiError

__all__ = ["AccessGuard", "ByteBudget", "SourceAccessError"]


class SourceAccessError(FatalApiError):
    """Every request to one object store was refused (401/403 or an unknown bucket) and none succeeded:
    wrong credentials, endpoint or bucket. The run stops once (exit 3) instead of failing row by row."""


class ByteBudget:
    """At most ``capacity`` bytes reserved at once, granted first come, first served.

    A reservation larger than the capacity is clipped to it (it then runs alone), so no request waits
    forever. FIFO order keeps a large object from being starved by a stream of small ones.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @asynccontextmanager
    async def reserve(self, nbytes: int) -> AsyncIterator[None]:
        """Hold ``min(nbytes, capacity)`` bytes of the budget for the duration of the ``async with``."""
        amount = max(0, min(nbytes, self.capacity))
        await self._acquire(amount)
        try:
            yield
        finally:
            self.in_use -= amount
            self._wake()

    async def _acquire(self, amount: int) -> None:
        if not self._waiters and self.in_use + amount <= self.capacity:
            self._take(amount)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (amount, future)
        self._waiters.append(entry)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.in_use -= amount  # granted just as we were cancelled: give it back
            else:
                self._waiters.remove(entry)
            self._wake()
            raise

    def _take(self, amount: int) -> None:
        self.in_use += amount
        self.peak = max(self.peak, self.in_use)

    def _wake(self) -> None:
        while self._waiters and self.in_use + self._waiters[0][0] <= self.capacity:
            amount, future = self._waiters.popleft()
            if not future.done():
                self._take(amount)
                future.set_result(None)


class AccessGuard:
    """Counts access failures per store; raises ``SourceAccessError`` once ``threshold`` consecutive
    requests to a store were refused and none has ever succeeded. A store that served one object is
    trusted for the run: later refusals are per-object (one forbidden key), never fatal."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._failures: dict[str, int] = {}
        self._proven: set[str] = set()
        self._tripped: dict[str, str] = {}

    def check(self, store: str) -> None:
        """Raise the stored ``SourceAccessError`` if ``store`` already tripped the guard."""
        message = self._tripped.get(store)
        if message is not None:
            raise SourceAccessError(message)

    def succeeded(self, store: str) -> None:
        """Record an answer from ``store`` that proves access (an object read, or a plain not-found)."""
        self._proven.add(store)
        self._failures.pop(store, None)

    def refused(self, store: str, why: str) -> None:
        """Record a refusal (``why``: e.g. ``403 AccessDenied``); raise once the threshold is reached."""
        if store in self._proven:
            return
        count = self._failures[store] = self._failures.get(store, 0) + 1
        if count >= self.threshold:
            self._tripped[store] = (
                f"{store} refused the first {count} requests ({why}): check the credentials "
                "(AWS_* / GOOGLE_APPLICATION_CREDENTIALS), --s3-endpoint and the bucket name."
            )
            self.check(store)
