"""The stages of one run, wired with bounded asyncio queues (see ``pipeline.runner`` for the whole).

Memory stays flat whatever the manifest size: rows are read in chunks, at most ``4 x workers`` rows are
being prepared and at most ``concurrency`` prepared images wait for an upload worker. A row is only ever
uploaded by a worker that first journaled its presigned key, and finished rows are committed one by one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from itertools import islice
from typing import Any

import structlog

from pipeline.client import ApiClient
from pipeline.config import Settings
from pipeline.errors import FatalApiError
from pipeline.images import prepare
from pipeline.journal import Journal
from pipeline.manifest import Manifest
from pipeline.models import Prepared, Presigned, Rejected, Row, RowResult, Status
from pipeline.naming import upload_name
from pipeline.progress import Progress

__all__ = ["Stages"]

log = structlog.get_logger("pipeline.runner")

_FLUSH_EVERY = 512
_MAX_DETAIL = 400


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    while chunk := list(islice(rows, size)):
        yield chunk


def _clipped(result: RowResult) -> RowResult:
    """The result with a ``detail`` short enough for a log line and a results cell (a hostile manifest can
    hold a path of megabytes, and details quote paths)."""
    if result.detail is None or len(result.detail) <= _MAX_DETAIL:
        return result
    cut = _MAX_DETAIL // 2
    return replace(result, detail=f"{result.detail[:cut]}...{result.detail[-cut:]}")


@dataclass
class _Content:
    """A source content (sha256) being uploaded in this run: later identical rows wait on ``key``."""

    first_key: str
    key: asyncio.Future[str | None]


class Stages:
    """One run's stages and their shared state; ``execute()`` drives them to the end or to a stop."""

    def __init__(
        self, settings: Settings, manifest: Manifest, journal: Journal, progress: Progress, client: ApiClient | None
    ) -> None:
        self.s = settings
        self.manifest = manifest
        self.journal = journal
        self.progress = progress
        self.client = client
        self.stop = asyncio.Event()
        self.fatal: FatalApiError | None = None
        self.interrupted = False
        self.queue: asyncio.Queue[tuple[Row, Prepared, str | None] | None] = asyncio.Queue(
            maxsize=settings.api.concurrency
        )
        self.content: dict[str, _Content] = {}
        self.pending_rejects: list[RowResult] = []
        self.workers: list[asyncio.Task[None]] = []
        self.prep_tasks: set[asyncio.Task[None]] = set()
        self.main_task = asyncio.current_task()
        self.abandoned = False
        self.json_rows = settings.log_format == "json"

    # -- recording ---------------------------------------------------------------------------------
    def _log_row(self, result: RowResult) -> None:
        if result.status in (Status.REJECTED, Status.FAILED):
            event = "row_rejected" if result.status is Status.REJECTED else "row_failed"
            emit = log.info if self.json_rows or result.status is Status.FAILED else log.debug
            emit(event, row=result.key, reason=result.reason, detail=result.detail)

    def record(self, result: RowResult) -> None:
        result = _clipped(result)
        self.journal.record(result)
        self.progress.update(result.status.value)
        self._log_row(result)

    def record_reject(self, result: RowResult) -> None:
        """Rejections are cheap to redo, so they are committed in groups (see the 1M-row benchmark)."""
        result = _clipped(result)
        self.pending_rejects.append(result)
        self.progress.update(result.status.value)
        self._log_row(result)
        if len(self.pending_rejects) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.pending_rejects:
            self.journal.record_many(self.pending_rejects)
            self.pending_rejects = []

    # -- stages ------------------------------------------------------------------------------------
    async def produce(self, pool: Executor) -> None:
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(max(2, 4 * _pool_size(self.s)))
        tasks = self.prep_tasks
        chunks = _chunks(self.manifest.rows(), self.s.batch_size)
        while not self.stop.is_set():
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk is None:
                break
            done = self.journal.done_indices(chunk[0].index, chunk[-1].index + 1, retry_failed=self.s.retry_failed)
            for row in chunk:
                if row.index in done:
                    continue
                if self.stop.is_set():
                    break
                if row.source is None:
                    reason, detail = row.problem or ("missing_path", "the path cell is empty")
                    self.record_reject(RowResult(row.index, row.key, Status.REJECTED, reason=reason, detail=detail))
                    continue
                await slots.acquire()
                task = loop.create_task(self.prepare_row(pool, row, slots))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        self.flush()

    async def prepare_row(self, pool: Executor, row: Row, slots: asyncio.Semaphore) -> None:
        try:
            assert row.source is not None
            loop = asyncio.get_running_loop()
            out = await loop.run_in_executor(pool, prepare, row.source, self.s.policy)
            if isinstance(out, Rejected):
                self.record_reject(
                    RowResult(row.index, row.key, Status.REJECTED, reason=out.reason, detail=out.detail,
                              bytes=out.source_bytes, source_sha256=out.source_sha256)
                )
                return
            duplicate_of, reuse = await self.check_content(row, out)
            if reuse is not None:
                self.record(self._uploaded(row, out, reuse, 0, duplicate_of))
            elif self.s.dry_run:
                self.record(self._result(row, out, Status.SKIPPED, duplicate_of=duplicate_of))
                self._release_content(row, out, None)
            elif self.stop.is_set():
                self._release_content(row, out, None)
            else:
                await self.queue.put((row, out, duplicate_of))
        finally:
            slots.release()

    async def check_content(self, row: Row, prepared: Prepared) -> tuple[str | None, str | None]:
        """(duplicate_of, key to reuse): byte-identical sources are reported; with --dedupe uploaded once."""
        sha = prepared.source_sha256
        entry = self.content.get(sha)
        if entry is not None:
            if not self.s.dedupe:
                return entry.first_key, None
            # None when the first row did not end uploaded: then this row uploads on its own.
            return entry.first_key, await asyncio.shield(entry.key)
        found = self.journal.find_by_sha256(sha)
        if found is not None and found[0] != row.key:
            return found[0], (found[1] if self.s.dedupe else None)
        self.content[sha] = _Content(row.key, asyncio.get_running_loop().create_future())
        return None, None

    def _release_content(self, row: Row, prepared: Prepared, key: str | None) -> None:
        """Hand ``key`` to the rows waiting on this content; only the row that registered it may (a duplicate
        uploading alongside must not end the first row's entry early)."""
        entry = self.content.get(prepared.source_sha256)
        if entry is None or entry.first_key != row.key:
            return
        del self.content[prepared.source_sha256]
        if not entry.key.done():
            entry.key.set_result(key)

    async def upload_worker(self) -> None:
        assert self.client is not None
        while (item := await self.queue.get()) is not None:
            row, prepared, duplicate_of = item
            if self.stop.is_set():
                self._release_content(row, prepared, None)
                continue
            async def on_presigned(
                p: Presigned, row: Row = row, journal: Journal = self.journal, sha: str = prepared.source_sha256
            ) -> None:
                journal.mark_presigned(row.index, row.key, p.thumbnail_key, source_sha256=sha)

            try:
                outcome = await self.client.upload(
                    upload_name(row, prepared), prepared.data, prepared.content_type,
                    confirm=self.s.confirm, on_presigned=on_presigned,
                )
            except FatalApiError as exc:
                self._release_content(row, prepared, None)
                if self.fatal is None:
                    self.fatal = exc
                    log.error("fatal_api_error", error=str(exc), status=exc.status, code=exc.code)
                self.stop.set()
                continue
            except asyncio.CancelledError:
                self._release_content(row, prepared, None)
                raise
            except Exception as exc:
                # A bug, not an API answer: the row fails with a reason instead of killing the run.
                self._release_content(row, prepared, None)
                log.exception("internal_error", row=row.key)
                self.record(self._result(row, prepared, Status.FAILED, reason="internal_error",
                                         detail=f"{type(exc).__name__}: {exc}"))
                continue
            for orphan in outcome.orphans:
                self.journal.add_orphan(row.index, orphan, "retried")
            if outcome.ok:
                assert outcome.thumbnail_key is not None
                self.record(self._uploaded(row, prepared, outcome.thumbnail_key, outcome.attempts, duplicate_of))
            else:
                self.record(
                    self._result(row, prepared, Status.FAILED, reason=outcome.reason, detail=outcome.detail,
                                 attempts=outcome.attempts, duplicate_of=duplicate_of)
                )
            self._release_content(row, prepared, outcome.thumbnail_key)

    def _result(self, row: Row, p: Prepared, status: Status, **extra: Any) -> RowResult:
        return RowResult(
            row.index, row.key, status, action=p.action, width=p.width, height=p.height,
            bytes=len(p.data), source_sha256=p.source_sha256, **extra,
        )

    def _uploaded(self, row: Row, p: Prepared, key: str, attempts: int, duplicate_of: str | None) -> RowResult:
        return self._result(row, p, Status.UPLOADED, thumbnail_key=key, attempts=attempts,
                            uploaded_at=_now(), duplicate_of=duplicate_of)

    def on_signal(self) -> None:
        if self.stop.is_set():
            log.warning("interrupt_again", action="abandoning rows in flight; they are redone on the next run")
            self.abandoned = True
            if self.main_task is not None:
                self.main_task.cancel()
            return
        self.interrupted = True
        self.stop.set()
        log.warning("interrupted", action="finishing rows in flight, then writing results (Ctrl-C again to abandon)")

    async def execute(self) -> None:
        """Run the stages to completion, or until stopped; never leaves a task behind."""
        pool = _make_pool(self.s)
        if self.client is not None:
            self.workers = [asyncio.create_task(self.upload_worker()) for _ in range(self.s.api.concurrency)]
        try:
            await self.produce(pool)
            for _ in self.workers:
                await self.queue.put(None)
            await asyncio.gather(*self.workers)
        finally:
            # Normal end: everything is already done and these are no-ops. Error or abandon: rows in flight
            # stay 'presigned' in the journal and are redone (their key recorded as an orphan) next run.
            leftovers = [*self.workers, *self.prep_tasks]
            for task in leftovers:
                task.cancel()
            await asyncio.gather(*leftovers, return_exceptions=True)
            self.flush()
            pool.shutdown(wait=False, cancel_futures=True)


def _pool_size(settings: Settings) -> int:
    return settings.workers or os.cpu_count() or 2


def _make_pool(settings: Settings) -> Executor:
    if settings.use_processes:
        return ProcessPoolExecutor(max_workers=_pool_size(settings))
    return ThreadPoolExecutor(max_workers=_pool_size(settings), thread_name_prefix="prepare")
