"""The stages with one task per job: ``FetchStage`` (remote bytes) and ``PrepareStage`` (``images.prepare`` on
the run's engine, duplicates, unchanged sources), on the loop they share (``FanOut``: at most ``slots`` jobs at once,
the rest wait in the inbox, so memory stays flat whatever the manifest's size).
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog

from pipeline.config import Settings
from pipeline.engines.engine import Engine
from pipeline.engines.work import Outcome, Task
from pipeline.errors import FatalApiError
from pipeline.fetch import ByteBudget, Fetched, Fetcher, FetchRejected, Lease
from pipeline.models import Prepared, Rejected, Row, RowResult, Status
from pipeline.runner.attach_prep import now_utc
from pipeline.runner.context import RunContext
from pipeline.runner.control import RunControl
from pipeline.runner.dedupe import Contents
from pipeline.runner.plan import Why, source_of
from pipeline.runner.recorder import Recorder
from pipeline.runner.records import Job, Pipe, Ready

__all__ = ["KEY_LIFETIME", "FanOut", "FetchStage", "PrepareStage", "result_of", "unattached_detail"]

log = structlog.get_logger("pipeline.runner")

Out = TypeVar("Out")


class FanOut(Generic[Out]):
    """The loop a stage with per-job tasks shares: take jobs, start at most ``slots`` at once (``_one`` releases
    its slot), let ``_passed_on`` hand some jobs straight on, and at the end wait for the tasks, flush, close the
    outbox."""

    inbox: Pipe[Job]
    out: Pipe[Out]
    control: RunControl
    recorder: Recorder
    slots: asyncio.Semaphore
    tasks: set[asyncio.Task[None]]

    async def _passed_on(self, job: Job) -> bool:
        """Whether the job was handed straight on, needing no task of this stage."""
        return False

    async def _one(self, job: Job) -> None:
        raise NotImplementedError

    def _cancel_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()

    async def run(self) -> None:
        # A signal cancels the jobs under way (a slow source, a queued image): their rows stay unfinished.
        forget = self.control.on_interrupt(self._cancel_tasks)
        try:
            # A stop cuts the inbox: the jobs waiting there give their bytes back, and the loop ends.
            while (job := await self.inbox.get()) is not None:
                if await self._passed_on(job):
                    continue
                await self.slots.acquire()
                if not self.inbox.live:  # stopped while this job waited for a slot
                    self.inbox.drop(job)
                    self.slots.release()
                    break
                task = asyncio.create_task(self._one(job))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            if self.tasks:  # a job cancelled by a signal is no failure; the first failure ends the stage
                done, _ = await asyncio.wait(set(self.tasks), return_when=asyncio.FIRST_EXCEPTION)
                failed = [t.exception() for t in done if not t.cancelled() and t.exception() is not None]
                if failed:
                    raise failed[0]  # type: ignore[misc]
        finally:
            forget()
            for task in self.tasks:
                task.cancel()
            self.recorder.flush()
            await self.out.close()


class FetchStage(FanOut[Job]):
    """Brings remote sources' bytes (``Fetcher``: its own concurrency, bytes-in-flight budget, size limit,
    timeout and retries); local sources pass through untouched. A source that cannot be fetched is a
    rejected row with its reason; a store refusing everything stops the run (``SourceAccessError``)."""

    def __init__(self, ctx: RunContext, fetcher: Fetcher, inbox: Pipe[Job], out: Pipe[Job], *,
                 engine_fetches: bool = False) -> None:
        self.journal, self.recorder, self.control, self.fetcher = ctx.journal, ctx.recorder, ctx.control, fetcher
        self.inbox, self.out = inbox, out
        self.engine_fetches = engine_fetches
        """The engine reads remote sources itself (``Engine.fetches``): every job passes straight on."""
        self.slots = asyncio.Semaphore(fetcher.settings.fetch_concurrency)
        self.tasks: set[asyncio.Task[None]] = set()

    async def _passed_on(self, job: Job) -> bool:
        remote = job.row.remote
        if remote is not None:
            if not self.engine_fetches:
                return False
            # Read by the engine's workers, but a store closed already is not asked again.
            try:
                closed = self.fetcher.closed(remote)
            except FatalApiError as exc:  # every store the run reads from is closed
                self.control.fail(exc)
                return True
            if closed is not None:
                refused(self.recorder, job, closed)
                return True
        await self.out.put(job)  # local sources are read by the image stage, and remote ones by such an engine
        return True

    async def _one(self, job: Job) -> None:
        row = job.row
        assert row.remote is not None
        # The slot is held until the bytes are handed on, and the bytes stay in the fetch budget (their lease)
        # until the image stage is done with them: memory stays flat however long the manifest.
        got: Fetched | FetchRejected | None = None
        try:
            got = await self.fetcher.fetch(row.remote, hold=True)  # held until the image stage releases it
            if isinstance(got, FetchRejected):
                refused(self.recorder, job, got)
                return
            await self.out.put(replace(job, data=got.data, stamp=got.stamp.value, lease=got.lease))
            got = None  # the image stage releases the lease now
        except FatalApiError as exc:  # a store that refuses every request: the run's business
            self.control.fail(exc)
        finally:
            if isinstance(got, Fetched) and got.lease is not None:
                got.lease.release()  # not handed on (the run is ending)
            self.slots.release()


def refused(recorder: Recorder, job: Job, got: FetchRejected) -> None:
    """Record a source that could not be fetched as the row's rejection (an uploaded row keeps its key while its
    source cannot be read)."""
    row = job.row
    if not job.uploaded:
        recorder.record_later(RowResult(row.index, row.key, Status.REJECTED, reason=got.reason, detail=got.detail),
                              row.path)


class PrepareStage(FanOut[Ready]):
    """Runs ``images.prepare`` on the run's ``Engine`` (at most ``engine.slots`` at once; with an engine that
    fetches, remote sources are read there too); reports byte-identical sources (``duplicate_of``) and, with
    ``--dedupe``, lets them share one upload. A changed source is hashed first: same sha256, nothing to do.
    Prepared images wait for their upload under ``--prepared-max-bytes`` (``prepared``): a slot frees only once
    its image is handed on, so the engine is fed only as fast as the upload (a dry run: the journal) drains."""

    def __init__(self, ctx: RunContext, engine: Engine, inbox: Pipe[Job], out: Pipe[Ready],
                 passed: Counter[str] | None = None, *, fetcher: Fetcher | None = None) -> None:
        settings = self.s = ctx.settings
        self.journal, self.recorder, self.control = ctx.journal, ctx.recorder, ctx.control
        self.engine, self.inbox, self.out = engine, inbox, out
        self.fetcher = fetcher
        """The run's ``Fetcher``: judges the stores by what an engine's workers read (``Fetcher.judge``)."""
        self.passed: Counter[str] = Counter() if passed is None else passed
        """Rows that passed prepare, by why they were planned: what the run uploads (a dry run: would upload)."""
        self.slots = asyncio.Semaphore(max(2, engine.slots))
        # Prepared images held from here until their upload ends (``release``), by row index.
        self.prepared = ByteBudget(settings.fetch.prepared_max_bytes)
        self.held: dict[int, Lease] = {}
        self.contents = Contents(ctx.journal, dedupe=settings.dedupe)
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """The shared loop; at the end, logs the prepared images' byte budget high-water mark."""
        try:
            await super().run()
        finally:
            log.debug("byte_budget", budget="prepared", capacity=self.prepared.capacity, peak=self.prepared.peak)

    def _task(self, job: Job, *, unless: str | None = None, digest_only: bool = False) -> Task:
        """The engine's task for ``job``: its fetched bytes, its local file, or (an engine that fetches) its
        remote source with the fetch bounds."""
        row = job.row
        source: Path | bytes | Any = job.data if job.data is not None else (
            row.remote if row.remote is not None else Path(row.source or ""))
        assert job.data is not None or row.remote is not None or row.source is not None
        return Task(source, self.s.policy, self.s.fetch if row.remote is not None else None, unless, digest_only,
                    keep_data=not self.s.dry_run)

    async def _worked(self, job: Job, task: Task) -> tuple[Job, Outcome | None]:
        """The engine's outcome of ``task``, and ``job`` with the stamp of the version the engine read; ``None``
        when the source could not be fetched (then its rejection is recorded). Prepared bytes handed back are
        held in the budget (``held``) from before they reach the driver."""
        index = job.row.index

        async def admit(size: int) -> None:
            self.held[index] = await self.prepared.acquire(size)

        got = await self.engine.work(task, admit)
        if got.fetched:
            if job.row.remote is not None and self.fetcher is not None:
                try:  # each worker sees a share of the rows: whether a store refuses everything is judged here
                    self.fetcher.judge(job.row.remote, got.refused)
                except FatalApiError as exc:
                    self.control.fail(exc)
                    return job, None
            job = replace(job, stamp=got.stamp)
        if got.refused is not None:
            refused(self.recorder, job, got.refused)
            return job, None
        return job, got

    async def _one(self, job: Job) -> None:
        row, handed_on = job.row, False
        try:
            if self.journal.has_legacy and job.why is Why.NEW:  # maybe a version-1 row, adopted by its content
                job, hashed = await self._worked(job, self._task(job, digest_only=True))
                if hashed is None or (hashed.digest is not None and self._unchanged(job, hashed.digest)):
                    return
            job, got = await self._worked(job, self._task(job, unless=job.verify_sha256))
            if got is None:
                return
            if got.out is None:  # the same sha256 as journaled (``unless``): only the stamp is updated
                self.recorder.restamped(row.key, job.stamp, source_of(row))
                return
            out = got.out
            if job.uploaded and getattr(out, "source_sha256", None) != job.verify_sha256:
                self.recorder.reopened(row.key)  # its old key stays in the journal, as an orphan
            if isinstance(out, Rejected):
                self.recorder.record_later(RowResult(
                    row.index, row.key, Status.REJECTED, reason=out.reason, detail=out.detail,
                    bytes=out.source_bytes, source_sha256=out.source_sha256, source_stamp=job.stamp,
                    source_path=source_of(row)), row.path)
                return
            size = len(out.data) if got.size is None else got.size  # a dry run's images stay where they were made
            duplicate_of, reuse = await self.contents.check(row, out.source_sha256)
            self.passed[job.why.value] += 1
            if reuse is not None:
                self.recorder.record(result_of(job, out, Status.UPLOADED, thumbnail_key=reuse, this_run="reused",
                                               uploaded_at=now_utc(), duplicate_of=duplicate_of, size=size), row.path)
            elif self.s.dry_run:
                self.recorder.record(result_of(job, out, Status.SKIPPED, duplicate_of=duplicate_of, size=size,
                                               detail=unattached_detail(self.s, row, None)), row.path)
                self._settle(row, out, None)
            else:
                # The image's bytes were held (``admit``) before the source's go back; no source bytes go on. After
                # a stop the outbox is cut: ``put`` drops the image, which settles it (``records.drop_ready``).
                await self.out.put(Ready(replace(job, data=None, lease=None), out, duplicate_of,
                                         functools.partial(self._settle, row, out)))
                handed_on = True
        finally:
            if not handed_on and (held := self.held.pop(row.index, None)) is not None:
                held.release()  # not going to an upload: its prepared bytes go back now
            if job.lease is not None:
                job.lease.release()  # the source's bytes are no longer needed
            self.slots.release()

    def _unchanged(self, job: Job, digest: str) -> bool:
        """Whether the hashed source is the journaled content (or, for a version-1 journal, a row adopted
        under its new key); then only the stamp is updated."""
        row = job.row
        same = job.verify_sha256 is not None and digest == job.verify_sha256
        if same or (job.why is Why.NEW and self.recorder.adopted(row.index, digest, row.key)):
            self.recorder.restamped(row.key, job.stamp, source_of(row))
            return True
        return False

    def _settle(self, row: Row, prepared: Prepared, key: str | None) -> None:
        """``Ready.settle``: give back the row's prepared bytes (its upload is over) and hand ``key`` to the rows
        waiting on its content. Idempotent."""
        if (held := self.held.pop(row.index, None)) is not None:
            held.release()
        self.contents.settle(row, prepared.source_sha256, key)


KEY_LIFETIME = timedelta(hours=24)
"""A key not attached to a person expires this long after its upload (API.md, section 2)."""


def unattached_detail(settings: Settings, row: Row, uploaded_at: str | None) -> str | None:
    """With ``--attach``, the detail of a row that has no person: its key is uploaded but not attached, and
    expires 24 h after its upload (at ``uploaded_at`` + 24 h; a dry run: 24 h after a real run's upload)."""
    if not settings.attach or row.person is not None or row.person_id is not None:
        return None
    if uploaded_at is None:
        return ("no person: with --attach a real run uploads it unattached, and its key expires 24 h after its "
                "upload; give it a person (or person_id) to attach it")
    expires = (datetime.fromisoformat(uploaded_at) + KEY_LIFETIME).astimezone(timezone.utc)
    return (f"no person: uploaded but not attached; its key expires at {expires:%Y-%m-%d %H:%M} UTC; give it a "
            "person (or person_id) and run again before then to attach it")


def result_of(job: Job, p: Prepared, status: Status, *, size: int | None = None, **extra: Any) -> RowResult:
    """The ``RowResult`` of a prepared row (what was or would be uploaded); ``size``: its length when ``p``
    came back without its bytes (a dry run's)."""
    row = job.row
    return RowResult(row.index, row.key, status, action=p.action, width=p.width, height=p.height,
                     bytes=len(p.data) if size is None else size, source_sha256=p.source_sha256, source_stamp=job.stamp,
                     source_path=source_of(row), **extra)

