"""The stages of one run, each a small object with ``async run()``, joined by bounded ``Pipe``s of frozen
records: read (manifest -> ``RowBatch``) -> plan (-> ``Job``) -> prepare (-> ``Ready``) -> upload.

Memory stays flat whatever the manifest's size: every pipe is bounded, at most ``4 x workers`` rows are being
prepared and at most ``concurrency`` prepared images wait for an upload worker. A row is only uploaded by a
worker that first journaled its presigned key. A new stage (fetch, attach) is one more object and one more
pipe, wired in ``session``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import Counter
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from pipeline.client import ApiClient
from pipeline.config import Settings
from pipeline.errors import FatalApiError, IngestError
from pipeline.fetch import Fetcher, FetchRejected, SourceStamp
from pipeline.images import prepare
from pipeline.journal import Entry, Journal
from pipeline.manifest import Manifest
from pipeline.models import Prepared, Presigned, Rejected, Row, RowResult, Status
from pipeline.naming import upload_name
from pipeline.runner.attach_route import AttachRoute
from pipeline.runner.control import RunControl
from pipeline.runner.plan import Decision, Why, decide, stamp_of
from pipeline.runner.recorder import Recorder
from pipeline.runner.records import Job, Pipe, Ready
from pipeline.runner.spill import Spill

if TYPE_CHECKING:
    from pipeline.manifest import RowBatch

__all__ = ["FetchStage", "PlanStage", "PrepareStage", "ReadStage", "Stage", "UploadStage", "hash_source"]

log = structlog.get_logger("pipeline.runner")


class Stage(Protocol):
    """One stage: ``run`` consumes its inbox to the end (or to a stop) and then closes its outbox."""

    async def run(self) -> None:
        """Process until the inbox ends; never returns with work half handed on."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def hash_source(source: Path | bytes) -> str | None:
    """sha256 of fetched bytes or of a local file (streamed, 1 MiB at a time); ``None`` when it cannot be
    read."""
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest()
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


class ReadStage:
    """Reads the manifest once, tees every batch to the spill (the results are written from it) and hands
    batches on while the run goes on. After a stop it still reads to the end, for the spill only, so the
    results list every row."""

    def __init__(self, manifest: Manifest, spill: Spill, out: Pipe[RowBatch], control: RunControl) -> None:
        self.manifest, self.spill, self.out, self.control = manifest, spill, out, control

    async def run(self) -> None:
        batches = self.manifest.row_batches()

        def step() -> RowBatch | None:
            batch = next(batches, None)
            if batch is not None:
                self.spill.write(batch)
            return batch

        try:
            while (batch := await asyncio.to_thread(step)) is not None:
                if not self.control.stopping.is_set():
                    await self.out.put(batch)
        finally:
            await self.out.close()


class PlanStage:
    """Looks every row's key up in the journal and decides: leave it (finished, unchanged), reject it now
    (no usable path, missing file), or hand it on as a ``Job``. Honours ``--limit``."""

    def __init__(self, settings: Settings, journal: Journal, recorder: Recorder, control: RunControl,
                 inbox: Pipe[RowBatch], out: Pipe[Job], fetcher: Fetcher, attach: AttachRoute | None = None) -> None:
        self.s, self.journal, self.recorder, self.control = settings, journal, recorder, control
        self.inbox, self.out, self.fetcher, self.attach = inbox, out, fetcher, attach
        self.planned: Counter[str] = Counter()
        self.limited = False
        self._jobs = 0

    async def run(self) -> None:
        try:
            while (batch := await self.inbox.get()) is not None:
                if not self.control.stopping.is_set() and not self.limited:
                    await self._plan(batch)
        finally:
            self.recorder.flush()
            await self.out.close()

    async def _plan(self, batch: RowBatch) -> None:
        rows = batch.rows
        stamps, missing = await asyncio.to_thread(_stat_rows, rows)
        entries = self.journal.lookup([r.key for r in rows])
        await self._remote_stamps(rows, entries, stamps)
        work: list[tuple[Row, Job | None]] = []
        finished = 0
        for row, stamp, gone in zip(rows, stamps, missing, strict=True):
            entry = entries.get(row.key)
            routed = await self.attach.route(row, entry, stamp) if self.attach is not None else False
            if routed is True:
                continue
            decision = (Decision(Why.EXPIRED) if isinstance(routed, Job)
                        else decide(entry, stamp, retry_failed=self.s.retry_failed))
            if decision.why is None:
                finished += 1
                continue
            if self.s.limit is not None and self._jobs >= self.s.limit:
                self.limited = True
                break
            self._jobs += 1
            self.planned[decision.why.value] += 1
            uploaded = entry is not None and entry.status is Status.UPLOADED
            usable = (row.source is not None or row.remote is not None) and not gone
            work.append((row, Job(row, decision.why, stamp, decision.verify_sha256, uploaded) if usable else None))
        # Rows left alone are counted first, so the bar of a resumed run starts where the journal stands.
        self.planned["finished"] += finished
        if finished:
            self.recorder.progress.update("finished", finished)
        for row, job in work:
            if self.control.stopping.is_set():
                break
            if job is None:
                reason, detail = row.problem or ("not_found", f"no such file: {row.source}")
                self.recorder.record_later(RowResult(row.index, row.key, Status.REJECTED, reason=reason,
                                                     detail=detail), row.path)
            else:
                await self.out.put(job)

    async def _remote_stamps(self, rows: tuple[Row, ...], entries: dict[str, Entry],
                             stamps: list[str | None]) -> None:
        """The stamps (one HEAD each, at the fetch stage's concurrency) of remote rows the journal holds as
        finished: an unchanged ETag leaves the row alone without fetching it."""
        wanted = [i for i, r in enumerate(rows) if r.remote is not None and r.key in entries
                  and entries[r.key].status in (Status.UPLOADED, Status.REJECTED)]

        async def one(i: int) -> None:
            ref = rows[i].remote
            assert ref is not None
            got = await self.fetcher.stat(ref)
            stamps[i] = got.value if isinstance(got, SourceStamp) else None

        await asyncio.gather(*(one(i) for i in wanted))


def _absent(path: str) -> bool | None:
    """True when nothing is at ``path`` (nor is its folder there), False when something is (a dangling symlink
    included), None when the system will not say (a name too long, no permission): the image stage then says
    precisely what is wrong."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except (OSError, ValueError):
        return None
    return False


def _stat_rows(rows: tuple[Row, ...]) -> tuple[list[str | None], list[bool]]:
    """Each row's source stamp, and whether its source is missing altogether (rejected without the pool).

    A folder that does not exist is looked up once per batch, not once per row: a manifest whose paths are
    relative to the wrong folder costs one system call per folder."""
    folders: dict[str, bool | None] = {}
    stamps: list[str | None] = []
    missing: list[bool] = []
    for row in rows:
        if row.source is None:
            stamps.append(None)
            missing.append(False)
            continue
        text = str(row.source)
        folder = os.path.dirname(text)  # noqa: PTH120  # str: cheaper per row than PurePath
        if folder not in folders:
            folders[folder] = _absent(folder)
        stamp = None if folders[folder] else stamp_of(text)
        stamps.append(stamp)
        missing.append(stamp is None and (folders[folder] is True or _absent(text) is True))
    return stamps, missing


@dataclass
class _Content:
    """A source content (sha256) being uploaded in this run: later identical rows wait on ``key``."""

    first_key: str
    key: asyncio.Future[str | None]


class _FanOut:
    """The loop a stage with per-job tasks shares: take jobs, start at most ``slots`` at once (``_one`` releases
    its slot), hand ``_direct`` jobs straight on, and at the end wait for the tasks, flush, close the outbox."""

    inbox: Pipe[Job]
    out: Pipe[Any]
    control: RunControl
    recorder: Recorder
    slots: asyncio.Semaphore
    tasks: set[asyncio.Task[None]]

    def _direct(self, job: Job) -> bool:
        return False

    async def _one(self, job: Job) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        try:
            while (job := await self.inbox.get()) is not None:
                if self.control.stopping.is_set():
                    continue
                if self._direct(job):
                    await self.out.put(job)
                    continue
                await self.slots.acquire()
                task = asyncio.create_task(self._one(job))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            if self.tasks:
                await asyncio.gather(*self.tasks)
        finally:
            for task in self.tasks:
                task.cancel()
            self.recorder.flush()
            await self.out.close()


class FetchStage(_FanOut):
    """Brings remote sources' bytes (``Fetcher``: its own concurrency, bytes-in-flight budget, size limit,
    timeout and retries); local sources pass through untouched. A source that cannot be fetched is a
    rejected row with its reason; a store refusing everything stops the run (``SourceAccessError``)."""

    def __init__(self, journal: Journal, recorder: Recorder, control: RunControl, fetcher: Fetcher,
                 inbox: Pipe[Job], out: Pipe[Job]) -> None:
        self.journal, self.recorder, self.control, self.fetcher = journal, recorder, control, fetcher
        self.inbox, self.out = inbox, out
        self.slots = asyncio.Semaphore(fetcher.settings.fetch_concurrency)
        self.tasks: set[asyncio.Task[None]] = set()

    def _direct(self, job: Job) -> bool:
        return job.row.remote is None  # local sources are read by the image stage

    async def _one(self, job: Job) -> None:
        row = job.row
        assert row.remote is not None
        # The slot is held until the bytes are handed on: fetched bytes waiting for the image stage count
        # against --fetch-concurrency, so memory stays flat however long the manifest.
        try:
            got = await self.fetcher.fetch(row.remote)
            if isinstance(got, FetchRejected):
                if not job.uploaded:  # an uploaded row keeps its key while its source cannot be read
                    self.recorder.record_later(RowResult(row.index, row.key, Status.REJECTED, reason=got.reason,
                                                         detail=got.detail), row.path)
                return
            await self.out.put(replace(job, data=got.data, stamp=got.stamp.value))
        except FatalApiError as exc:  # a store that refuses every request: the run's business
            self.control.fail(exc)
        finally:
            self.slots.release()


class PrepareStage(_FanOut):
    """Runs ``images.prepare`` in the pool (at most ``slots`` at once); reports byte-identical sources
    (``duplicate_of``) and, with ``--dedupe``, lets them share one upload. A changed source is hashed first:
    same sha256, nothing to do."""

    def __init__(self, settings: Settings, journal: Journal, recorder: Recorder, control: RunControl,
                 pool: Executor, slots: int, inbox: Pipe[Job], out: Pipe[Ready]) -> None:
        self.s, self.journal, self.recorder, self.control = settings, journal, recorder, control
        self.pool, self.inbox, self.out = pool, inbox, out
        self.slots = asyncio.Semaphore(max(2, slots))
        self.content: dict[str, _Content] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def _pooled(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def _one(self, job: Job) -> None:
        row = job.row
        source: Path | bytes | None = job.data if job.data is not None else row.source
        assert source is not None
        try:
            if job.verify_sha256 is not None or (self.journal.has_legacy and job.why is Why.NEW):
                digest = await self._pooled(hash_source, source)
                if digest is not None and self._unchanged(job, digest):
                    return
            out = await self._pooled(prepare, source, self.s.policy)
            if job.uploaded and getattr(out, "source_sha256", None) != job.verify_sha256:
                self.journal.reopen(row.key)  # its old key stays in the journal, as an orphan
            if isinstance(out, Rejected):
                self.recorder.record_later(RowResult(
                    row.index, row.key, Status.REJECTED, reason=out.reason, detail=out.detail,
                    bytes=out.source_bytes, source_sha256=out.source_sha256, source_stamp=job.stamp), row.path)
                return
            duplicate_of, reuse = await self._content(row, out)
            if reuse is not None:
                self.recorder.record(result_of(job, out, Status.UPLOADED, thumbnail_key=reuse,
                                               uploaded_at=_now(), duplicate_of=duplicate_of), row.path)
            elif self.s.dry_run or self.control.stopping.is_set():
                if self.s.dry_run:
                    self.recorder.record(result_of(job, out, Status.SKIPPED, duplicate_of=duplicate_of), row.path)
                self.release(row, out, None)
            else:
                await self.out.put(Ready(job, out, duplicate_of))
        finally:
            self.slots.release()

    def _unchanged(self, job: Job, digest: str) -> bool:
        """Whether the hashed source is the journaled content (or, for a version-1 journal, a row adopted
        under its new key); then only the stamp is updated."""
        row = job.row
        if job.verify_sha256 is not None and digest == job.verify_sha256:
            if job.stamp is not None:
                self.journal.restamp(row.key, job.stamp)
            self.recorder.unchanged()
            return True
        if job.why is Why.NEW and self.journal.adopt_legacy(row.index, digest, row.key) is not None:
            if job.stamp is not None:
                self.journal.restamp(row.key, job.stamp)
            self.recorder.unchanged()
            return True
        return False

    async def _content(self, row: Row, prepared: Prepared) -> tuple[str | None, str | None]:
        """(duplicate_of, key to reuse): byte-identical sources are reported; with --dedupe uploaded once."""
        sha = prepared.source_sha256
        entry = self.content.get(sha)
        if entry is not None:
            if not self.s.dedupe:
                return entry.first_key, None
            return entry.first_key, await asyncio.shield(entry.key)  # None: the first did not end uploaded
        found = self.journal.find_by_sha256(sha)
        if found is not None and found[0] != row.key:
            return found[0], (found[1] if self.s.dedupe else None)
        self.content[sha] = _Content(row.key, asyncio.get_running_loop().create_future())
        return None, None

    def release(self, row: Row, prepared: Prepared, key: str | None) -> None:
        """Hand ``key`` to the rows waiting on this content; only the row that registered it may."""
        entry = self.content.get(prepared.source_sha256)
        if entry is None or entry.first_key != row.key:
            return
        del self.content[prepared.source_sha256]
        if not entry.key.done():
            entry.key.set_result(key)


def result_of(job: Job, p: Prepared, status: Status, **extra: Any) -> RowResult:
    """The ``RowResult`` of a prepared row (what was or would be uploaded)."""
    row = job.row
    return RowResult(row.index, row.key, status, action=p.action, width=p.width, height=p.height,
                     bytes=len(p.data), source_sha256=p.source_sha256, source_stamp=job.stamp, **extra)


class UploadStage:
    """``concurrency`` workers: presign -> PUT -> confirm through the client, each row journaled as presigned
    before its PUT and recorded when it ends. After a stop, prepared rows not yet started are left."""

    def __init__(self, settings: Settings, journal: Journal, recorder: Recorder, control: RunControl,
                 client: ApiClient, prepare_stage: PrepareStage, inbox: Pipe[Ready],
                 attach: AttachRoute | None = None) -> None:
        self.s, self.journal, self.recorder, self.control = settings, journal, recorder, control
        self.client, self.prep, self.inbox, self.attach = client, prepare_stage, inbox, attach

    async def run(self) -> None:
        try:
            await asyncio.gather(*(self._worker() for _ in range(self.s.api.concurrency)))
        finally:
            if self.attach is not None:
                await self.attach.out.close()

    async def _worker(self) -> None:
        while (item := await self.inbox.get()) is not None:
            job, prepared = item.job, item.prepared
            row = job.row
            if self.control.stopping.is_set():
                self.prep.release(row, prepared, None)
                continue

            async def on_presigned(p: Presigned, job: Job = job, sha: str = prepared.source_sha256) -> None:
                self.journal.mark_presigned(job.row.key, p.thumbnail_key, source_sha256=sha, source_stamp=job.stamp)

            try:
                outcome = await self.client.upload(
                    upload_name(row, prepared), prepared.data, prepared.content_type,
                    confirm=self.s.confirm, on_presigned=on_presigned,
                )
            except FatalApiError as exc:
                self.prep.release(row, prepared, None)
                self.control.fail(exc)
                continue
            except (IngestError, asyncio.CancelledError):  # a full disk, a journal rule: the run's business
                self.prep.release(row, prepared, None)
                raise
            except Exception as exc:  # a bug, not an API answer: the row fails instead of the run
                self.prep.release(row, prepared, None)
                log.exception("internal_error", row=row.key, path=row.path)
                self.recorder.record(result_of(job, prepared, Status.FAILED, reason="internal_error",
                                               detail=f"{type(exc).__name__}: {exc}"), row.path)
                continue
            key = outcome.thumbnail_key if outcome.ok else None
            if outcome.ok:
                result = result_of(job, prepared, Status.UPLOADED, thumbnail_key=key, attempts=outcome.attempts,
                                   uploaded_at=_now(), duplicate_of=item.duplicate_of)
            else:
                result = result_of(job, prepared, Status.FAILED, reason=outcome.reason, detail=outcome.detail,
                                   attempts=outcome.attempts, duplicate_of=item.duplicate_of)
            retried = [k for k in outcome.orphans if k != key]
            self.recorder.record(result, row.path, retried=retried)
            self.prep.release(row, prepared, key)
            if key is not None and self.attach is not None:
                await self.attach.uploaded(row, key)
