"""How the client stops when the run is interrupted: every wait of a row that holds no key ends at once (a
presign, its retries and backoff, a 429 pause, a limiter wait), and a row holding a key (its PUT or its status
calls under way) is waited for at most ``stop_grace`` seconds, then left presigned for the next run.

Waits end by cancellation: the work is a task raced against an ``asyncio.Event``, never a flag polled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from pipeline.client.limiter import Sleep

__all__ = ["Halt", "RowInterrupted", "until"]

T = TypeVar("T")


class RowInterrupted(Exception):  # a row's end, not an IngestError: no row outcome, no run failure
    """The run was interrupted before this row finished: nothing is recorded for it, so its journal state
    stays what it was (never presigned in this round, or presigned: the next run redoes it)."""


async def until(event: asyncio.Event, work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result, unless ``event`` is set first: then ``work`` is cancelled (its cancellation awaited,
    so nothing of it is left running) and ``RowInterrupted`` is raised. A ``work`` that ended as the event was
    set keeps its outcome. Cancelling the caller cancels ``work`` too."""
    if event.is_set():
        work.close()
        raise RowInterrupted
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait((task,))
            if not task.cancelled():
                task.exception()  # retrieved: an error raised while being cancelled is not the caller's
    if task.cancelled():
        raise RowInterrupted
    return task.result()


class Halt:
    """The client's two stop events. ``start()`` (the run is interrupted) sets ``now``: waits holding no key
    end. ``stop_grace`` seconds later (on the client's ``sleep``; at once for 0) it sets ``late``: rows
    holding a key are left too. ``close()`` ends the grace timer (the client closes)."""

    def __init__(self, grace: float, sleep: Sleep) -> None:
        self.grace, self._sleep = grace, sleep
        self.now = asyncio.Event()
        self.late = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        """Whether the run was interrupted."""
        return self.now.is_set()

    def start(self) -> None:
        """End every wait that holds no key now, and start the grace of the rows holding one (once)."""
        if self.now.is_set():
            return
        self.now.set()
        if self.grace <= 0:
            self.late.set()
        else:
            self._timer = asyncio.ensure_future(self._run_out())

    async def _run_out(self) -> None:
        await self._sleep(self.grace)
        self.late.set()

    def check(self) -> None:
        """Raise ``RowInterrupted`` once the run is interrupted (before a row takes a key)."""
        if self.now.is_set():
            raise RowInterrupted

    async def close(self) -> None:
        """Stop the grace timer, if it runs."""
        timer, self._timer = self._timer, None
        if timer is not None and not timer.done():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
