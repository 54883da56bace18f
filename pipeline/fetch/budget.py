"""``ByteBudget``: a FIFO budget of bytes, held as ``Lease``s that may outlive the call that took them.

A run holds two: source bytes from the moment a fetch reserves them until the image stage has released them,
and prepared images from the image stage until their upload is done. Memory is then bounded by the budgets
(plus at most one object larger than a budget, which runs alone), whatever the pipes and slots hold.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["ByteBudget", "Lease"]


class Lease:
    """``amount`` bytes held in one ``ByteBudget`` until ``release`` (idempotent); ``shrink`` gives part back."""

    __slots__ = ("_budget", "amount")

    def __init__(self, budget: ByteBudget, amount: int) -> None:
        self._budget = budget
        self.amount = amount

    def shrink(self, nbytes: int) -> None:
        """Hold at most ``nbytes`` from now on (never more than already held): the rest goes back at once."""
        keep = max(0, min(nbytes, self.amount))
        if keep < self.amount:
            self._budget._give_back(self.amount - keep)
            self.amount = keep

    def release(self) -> None:
        """Give every byte back; calling it again does nothing."""
        self.shrink(0)


class ByteBudget:
    """At most ``capacity`` bytes held at once, granted first come, first served.

    A request larger than the capacity is clipped to it (it then runs alone), so no request waits forever.
    FIFO order keeps a large object from being starved by a stream of small ones. ``peak`` is the high-water
    mark of the bytes held: never above ``capacity``.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, nbytes: int) -> Lease:
        """Wait for ``min(nbytes, capacity)`` bytes and hold them until the returned lease is released. A
        cancelled wait takes nothing."""
        amount = max(0, min(nbytes, self.capacity))
        await self._acquire(amount)
        return Lease(self, amount)

    @asynccontextmanager
    async def reserve(self, nbytes: int) -> AsyncIterator[Lease]:
        """Hold ``min(nbytes, capacity)`` bytes of the budget for the duration of the ``async with``."""
        lease = await self.acquire(nbytes)
        try:
            yield lease
        finally:
            lease.release()

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
                self._give_back(amount)  # granted just as we were cancelled: give it back
            else:
                self._waiters.remove(entry)
                self._wake()  # a large request leaving the head of the queue may unblock smaller ones
            raise

    def _take(self, amount: int) -> None:
        self.in_use += amount
        self.peak = max(self.peak, self.in_use)

    def _give_back(self, amount: int) -> None:
        self.in_use -= amount
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_use + self._waiters[0][0] <= self.capacity:
            amount, future = self._waiters.popleft()
            if not future.done():
                self._take(amount)
                future.set_result(None)
