"""The records the runner's stages pass along, and ``Pipe``, the bounded queue that joins two stages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pipeline.fetch import Lease
from pipeline.models import Prepared, Row
from pipeline.runner.plan import Why

__all__ = ["Attachable", "Job", "Pipe", "Ready", "drop_job", "drop_ready"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Job:
    """A row that needs work in this run, with what the plan knew about it."""

    row: Row
    why: Why
    stamp: str | None
    """The source's stamp when planned: journaled with the row's outcome."""
    verify_sha256: str | None = None
    """Hash the source first; equal to this means unchanged and nothing to upload."""
    uploaded: bool = False
    """The row holds a key in the journal (uploaded or attached): a changed source must reopen it before a new
    upload."""
    replaces: str | None = None
    """The key an attached row held (``--attach``): it stays with its person, and the new key joins it."""
    replaced_person: str | None = None
    """The person ``replaces`` is attached to."""
    data: bytes | None = field(default=None, repr=False)
    """A remote source's bytes, once the fetch stage has them (a local source is read by the image stage)."""
    lease: Lease | None = field(default=None, repr=False, compare=False)
    """Holds ``data`` in the fetch budget until the image stage releases it (the byte budget)."""


@dataclass(frozen=True, slots=True)
class Ready:
    """A prepared image waiting for an upload worker. Whoever takes it must call ``settle`` once its upload is
    over (with the key it got, or ``None``): that gives its prepared bytes back to the budget and hands the key
    to the rows waiting on the same content (``--dedupe``); it is idempotent, so a ``finally`` may call it again."""

    job: Job
    prepared: Prepared
    duplicate_of: str | None
    settle: Callable[[str | None], None] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Attachable:
    """An uploaded row with a person, handed to the attach stage: its key, path and thumbnail key; ``fresh``
    when this run uploaded it (this run's counts then move it from ``uploaded`` to where it ends); what it
    replaces when it was attached before."""

    row_key: str
    path: str
    thumbnail_key: str
    fresh: bool = False
    replaces: str | None = None
    """The key this row's new key replaces: the journal held the row attached with it before its source or
    its person changed (that thumbnail stays with ``replaced_person``: the API cannot remove one)."""
    replaced_person: str | None = None
    """The person id ``replaces`` is attached to."""


def drop_job(job: Job) -> None:
    """A job that will not go on (the run stopped): its source bytes go back to the fetch budget."""
    if job.lease is not None:
        job.lease.release()


def drop_ready(ready: Ready) -> None:
    """A prepared image that will not be uploaded (the run stopped): settled without a key."""
    ready.settle(None)


class Pipe(Generic[T]):
    """A bounded FIFO between stages that can be closed or cut: ``get`` returns ``None`` once it is closed and
    drained, for every consumer. Closing never waits (a stage that is being cancelled closes its outbox in a
    ``finally`` even when nobody drains it any more), so no stage can hang on a full pipe at the end.

    ``cut`` is how a stop reaches the stages (``RunControl.on_stop``): the items waiting are handed to ``drop``
    (which gives back what they hold: a lease, a prepared image's bytes), every consumer waiting or to come gets
    ``None`` at once, and every producer's ``put`` returns ``False`` at once, dropping its item. So a stage
    needs no check of the run's state: its loop ends when its inbox does."""

    def __init__(self, maxsize: int, drop: Callable[[T], None] | None = None) -> None:
        self._queue: asyncio.Queue[T | None] = asyncio.Queue(maxsize=max(1, maxsize))
        self._closed = False
        self._cut = False
        self._cut_event = asyncio.Event()
        self._drop = drop

    @property
    def live(self) -> bool:
        """Whether items put now are still taken (the pipe is not cut)."""
        return not self._cut

    async def put(self, item: T) -> bool:
        """Wait for room, then add ``item`` (never after ``close``); ``False`` when the pipe is (or was, while
        this waited for room) cut: the item was dropped."""
        if self._cut:
            self.drop(item)
            return False
        try:
            self._queue.put_nowait(item)
            return True
        except asyncio.QueueFull:
            pass
        # Full: wait for room or for a cut, whichever comes first (a cut must end this wait, not a consumer).
        putting = asyncio.ensure_future(self._queue.put(item))
        cut = asyncio.ensure_future(self._cut_event.wait())
        try:
            await asyncio.wait((putting, cut), return_when=asyncio.FIRST_COMPLETED)
        finally:
            cut.cancel()
            putting.cancel()  # a no-op once it is done
        if putting.done() and not putting.cancelled():
            if not self._cut:
                return True
            self._drain()  # it went in as the pipe was cut: dropped with the rest
        else:
            self.drop(item)
        return False

    def drop(self, item: T) -> None:
        """Give back what ``item`` holds (the pipe's ``drop``), for an item a stage took but will not pass on."""
        if self._drop is not None:
            self._drop(item)

    async def close(self) -> None:
        """Mark the end of the stream (after every item already put), at once."""
        self._closed = True
        if not self._queue.full():
            self._queue.put_nowait(None)  # wakes a consumer waiting on an empty pipe

    def cut(self) -> None:
        """End the stream now: drop the items waiting, wake every consumer with ``None``. Idempotent."""
        self._cut = True
        self._cut_event.set()
        self._drain()

    def _drain(self) -> None:
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                self.drop(item)
        self._queue.put_nowait(None)  # the end mark, for every consumer waiting or to come

    async def get(self) -> T | None:
        """The next item, or ``None`` at the end of the stream (closed and drained, or cut)."""
        if self._cut or (self._closed and self._queue.empty()):
            return None
        item = await self._queue.get()
        if item is None and not self._queue.full():
            self._queue.put_nowait(None)  # the mark stays for the next consumer
        return item  # an item taken from the queue was put before any cut (a cut empties the queue at once)
