"""The stages of one run, each a small object with ``async run()``, joined by bounded ``Pipe``s of frozen
records: read (manifest -> ``RowBatch``) -> plan (-> ``Job``) -> fetch -> prepare (-> ``Ready``) -> upload
(-> attach). This module holds the ``Stage`` protocol and the first two; ``prepare_stage`` the fetch and
prepare stages, ``upload_stage`` the upload (all stage classes can be imported from here).

Memory stays flat whatever the manifest's size: every pipe is bounded, at most ``4 x workers`` rows are being
prepared and at most ``concurrency`` prepared images wait for an upload worker. A row is only uploaded by a
worker that first journaled its presigned key. A new stage is one more object and one more pipe, wired in
``session``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from pipeline.fetch import Fetcher, SourceRef, SourceStamp
from pipeline.journal import Entry, KnownPerson
from pipeline.manifest import Manifest
from pipeline.models import Row, RowResult, Status
from pipeline.runner.attach_prep import same_person, target_of
from pipeline.runner.attach_route import AttachRoute, Routed
from pipeline.runner.context import RunContext
from pipeline.runner.plan import Decision, Why, decide, source_of
from pipeline.runner.prepare_stage import FetchStage, PrepareStage
from pipeline.runner.records import Job, Pipe, Ready
from pipeline.runner.spill import Spill
from pipeline.runner.stamps import SEEN_MAX, stat_rows
from pipeline.runner.upload_stage import UploadStage

if TYPE_CHECKING:
    from pipeline.manifest import RowBatch

__all__ = ["Drain", "FetchStage", "PlanStage", "PrepareStage", "ReadStage", "Stage", "UploadStage", "by_person",
           "supervise"]

T = TypeVar("T")


class Stage(Protocol):
    """One stage: ``run`` consumes its inbox to the end (or to a stop) and then closes its outbox."""

    async def run(self) -> None:
        """Process until the inbox ends; never returns with work half handed on."""


def by_person(items: Sequence[T], person: Callable[[T], Hashable | None]) -> list[T]:
    """``items`` with each person's items next to each other: persons in order of their first item, items
    in their order within a person; an item without a person (``None``) keeps its place among the groups,
    so such items stay in their order too. Stable, one pass, for one batch (never the whole manifest)."""
    groups: dict[Hashable, list[T]] = {}
    for i, item in enumerate(items):
        who = person(item)
        groups.setdefault(("person", who) if who is not None else ("row", i), []).append(item)
    return [item for group in groups.values() for item in group]


class ReadStage:
    """Reads the manifest once, tees every batch to the spill (the results are written from it) and hands
    batches on while the run goes on. After a stop it still reads to the end, for the spill only, so the
    results list every row."""

    def __init__(self, ctx: RunContext, manifest: Manifest, spill: Spill, out: Pipe[RowBatch]) -> None:
        self.manifest, self.spill, self.out = manifest, spill, out

    async def run(self) -> None:
        batches = self.manifest.row_batches()

        def step() -> RowBatch | None:
            batch = next(batches, None)
            if batch is not None:
                self.spill.write(batch)
            return batch

        try:
            while (batch := await asyncio.to_thread(step)) is not None:
                await self.out.put(batch)  # after a stop the pipe is cut: the batch is only spilled
        finally:
            await self.out.close()


class PlanStage:
    """Looks every row's key up in the journal and decides: leave it (finished, unchanged), reject it now
    (no usable path, missing file), or hand it on as a ``Job``. Honours ``--limit``."""

    def __init__(self, ctx: RunContext, inbox: Pipe[RowBatch], out: Pipe[Job], fetcher: Fetcher,
                 attach: AttachRoute | None = None) -> None:
        self.s, self.journal, self.recorder, self.control = ctx.settings, ctx.journal, ctx.recorder, ctx.control
        self.inbox, self.out, self.fetcher, self.attach = inbox, out, fetcher, attach
        self.planned: Counter[str] = Counter()
        """Rows by why they were planned (``finished``: left alone), counted as they are handed on."""
        self.passed: Counter[str] = Counter()
        """Rows by why, counted by the prepare stage once they passed prepare: what is (or would be) uploaded."""
        self.unattached: list[str] = []
        """Upload times of rows without a person under ``--attach``, noted by the upload stage."""
        self.limited = False
        self._jobs = 0
        self._seen: dict[str, tuple[str | None, bool]] = {}
        """Each local file's stamp and whether it is missing, as first seen this run: a photo named by many rows
        is stat'ed once, not once a row (bounded: cleared past ``SEEN_MAX`` files)."""
        self._persons: dict[str, KnownPerson] | None = None
        """Target text -> person id as the journal knew them when planning began (``--attach``)."""

    async def run(self) -> None:
        try:
            while (batch := await self.inbox.get()) is not None:  # a stop cuts the inbox: the loop ends
                if not self.limited:
                    await self._plan(batch)
        finally:
            self.recorder.flush()
            await self.out.close()

    async def _plan(self, batch: RowBatch) -> None:
        rows = batch.rows
        self._note_stores(rows)
        if len(self._seen) > SEEN_MAX:
            self._seen.clear()
        stamps, missing = await asyncio.to_thread(stat_rows, rows, self._seen)
        untouched = self._left_alone(rows, stamps)
        entries = self.journal.lookup([r.key for r, done in zip(rows, untouched, strict=True) if not done])
        await self._remote_stamps(rows, entries, stamps)
        work: list[tuple[Row, Job | None]] = []
        finished = 0
        for row, stamp, gone, done in zip(rows, stamps, missing, untouched, strict=True):
            if done:
                finished += 1
                continue
            entry = entries.get(row.key)
            decision = await self._decision(row, entry, stamp)
            if decision is None:
                continue  # dealt with by the attach route
            if decision.why is None:
                finished += 1
                continue
            if self.s.limit is not None and self._jobs >= self.s.limit:
                self.limited = True
                break
            self._jobs += 1
            self.planned[decision.why.value] += 1
            usable = (row.source is not None or row.remote is not None) and not gone
            work.append((row, _job(row, entry, stamp, decision) if usable else None))
        if self.attach is not None:
            # A person's rows uploaded close together reach the attach stage close together: fewer, fuller
            # create/add calls. Only the work order changes: the results follow the spill (input order), and
            # the rows chosen (--limit included) and their journal records are the same.
            work = by_person(work, lambda item: target_of(item[0]))
        # Rows left alone are counted first, so the bar of a resumed run starts where the journal stands.
        self.planned["finished"] += finished
        if finished:
            self.recorder.progress.update("finished", finished)
        await self._hand_on(work)

    def _left_alone(self, rows: tuple[Row, ...], stamps: list[str | None]) -> list[bool]:
        """Which rows are finished with this very stamp and source (``_untouched``): the nightly no-op's one test
        a row, on the journal's narrow ``stamps`` (``decide`` says the same of them, at several times the cost).
        Under ``--attach`` every row is decided (its person may have changed)."""
        if self.attach is not None:
            return [False] * len(rows)
        known = self.journal.stamps([r.key for r in rows])
        return [_untouched(row, known.get(row.key), stamp) for row, stamp in zip(rows, stamps, strict=True)]

    def _note_stores(self, rows: tuple[Row, ...]) -> None:
        """Tell the fetcher every store the run reads from, before any request (a store refusing everything is
        then judged alone)."""
        local = False
        stores: dict[str, SourceRef] = {}
        for row in rows:
            ref = row.ref
            if type(ref) is SourceRef:
                if ref.scheme == "file":
                    local = True
                else:
                    stores.setdefault(ref.store, ref)
        if local:
            self.fetcher.saw(None)
        for ref in stores.values():
            self.fetcher.saw(ref)

    async def _decision(self, row: Row, entry: Entry | None, stamp: str | None) -> Decision | None:
        """What to do with the row (``None``: the attach route dealt with it). A dry run decides as the real
        run would (``--attach`` included)."""
        routed = await self.attach.route(row, entry, stamp) if self.attach is not None else Routed.PLAN
        if routed is Routed.DEALT:
            return None
        if routed is Routed.UPLOAD_AGAIN:
            return Decision(Why.EXPIRED)
        if entry is None:
            return decide(None, stamp, retry_failed=self.s.retry_failed)
        attach = self.s.attach
        changed = attach and entry.status is Status.ATTACHED and self._moved(row, entry)
        return decide(entry, stamp, retry_failed=self.s.retry_failed, path=source_of(row), attach=attach,
                      person_changed=changed)

    async def _hand_on(self, work: list[tuple[Row, Job | None]]) -> None:
        """Each job to the next stage; a row with no usable source is rejected here (its problem, or not found)."""
        for row, job in work:
            if job is None:
                reason, detail = row.problem or ("not_found", f"no such file: {row.source}")
                self.recorder.record_later(RowResult(row.index, row.key, Status.REJECTED, reason=reason,
                                                     detail=detail), row.path)
            elif not await self.out.put(job):
                break  # the run stopped (the pipe is cut): the rest of the batch stays unplanned

    def _moved(self, row: Row, entry: Entry) -> bool:
        """Whether an attached row's person is no longer the one its key sits on (``attach_prep.same_person``:
        a person id, or a name the journal maps to, other than ``entry.person_id``). A row whose person cells
        were emptied stays where it is."""
        target = target_of(row)
        if target is None or entry.person_id is None:
            return False
        if self._persons is None:
            self._persons = self.journal.known_persons()
        return not same_person(target, entry.person_id, self._persons)

    async def _remote_stamps(self, rows: tuple[Row, ...], entries: dict[str, Entry],
                             stamps: list[str | None]) -> None:
        """The stamps (one HEAD each, at the fetch stage's concurrency) of remote rows the journal holds as
        finished: an unchanged ETag leaves the row alone without fetching it."""
        wanted = [i for i, r in enumerate(rows) if r.remote is not None and r.key in entries
                  and entries[r.key].status in _HOLDING]

        async def one(i: int) -> None:
            ref = rows[i].remote
            assert ref is not None
            got = await self.fetcher.stat(ref)
            stamps[i] = got.value if isinstance(got, SourceStamp) else None

        if not wanted:
            return
        # A signal ends the HEADs at once (a row without its stamp keeps its key; nothing is handed on after a
        # stop anyway): no wait of the plan outlives the first signal.
        heads = asyncio.ensure_future(asyncio.gather(*(one(i) for i in wanted)))

        def stop_heads() -> None:
            heads.cancel()

        forget = self.control.on_interrupt(stop_heads)
        try:
            await heads
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the stage itself is being cancelled
        finally:
            forget()


_HOLDING = (Status.UPLOADED, Status.REJECTED, Status.ATTACHED)
"""Journal states in which a row may hold its key (a changed source reopens it before a new upload)."""


def _job(row: Row, entry: Entry | None, stamp: str | None, decision: Decision) -> Job:
    """The row's job: whether it holds a key (a changed source reopens it first), and the key and person an
    attached row's new key replaces."""
    assert decision.why is not None  # a row left alone gets no job
    holds = entry is not None and bool(entry.thumbnail_key) and entry.status in _HOLDING
    on_person = entry if holds and entry is not None and entry.status is Status.ATTACHED else None
    return Job(row, decision.why, stamp, decision.verify_sha256, holds,
               replaces=on_person.thumbnail_key if on_person is not None else None,
               replaced_person=on_person.person_id if on_person is not None else None)


_UPLOADED = Status.UPLOADED.value


def _untouched(row: Row, known: tuple[str, str | None, str | None] | None, stamp: str | None) -> bool:
    """Whether a local row is uploaded with this very stamp and source (``known``: the journal's ``stamps``):
    what ``decide`` leaves alone, tested without building a decision."""
    if known is None or known[0] != _UPLOADED or stamp is None or stamp != known[1]:
        return False
    source = row.source
    return source is not None and (known[2] is None or known[2] == source)




class Drain:
    """A dry run's last stage: nothing is uploaded, so nothing should arrive; consume to the end, settling
    whatever does (``Ready.settle``: its bytes go back, no row waits on it)."""

    def __init__(self, inbox: Pipe[Ready]) -> None:
        self.inbox = inbox

    async def run(self) -> None:
        while (item := await self.inbox.get()) is not None:
            item.settle(None)


async def supervise(stages: list[Stage]) -> None:
    """Run the stages together; when one fails, cancel the others and raise its error (no stage is left
    waiting on a pipe that nobody feeds)."""
    tasks = [asyncio.create_task(stage.run()) for stage in stages]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    failed = [t for t in done if not t.cancelled() and t.exception() is not None]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if failed:
        raise failed[0].exception()  # type: ignore[misc]
