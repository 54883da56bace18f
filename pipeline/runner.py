"""The asyncio orchestration: manifest -> prepare (pool) -> presign/PUT/confirm (workers) -> journal -> results.

Memory stays flat whatever the manifest size: rows are read in chunks, at most ``4 x workers`` rows are
being prepared and at most ``concurrency`` prepared images wait for an upload worker. The journal is the
source of truth: a row is only ever uploaded by a worker that first journaled its presigned key, and
finished rows are committed one by one, so a kill at any moment loses at most the rows in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any

import structlog

from pipeline.client import ApiClient
from pipeline.config import Settings
from pipeline.errors import FatalApiError
from pipeline.images import prepare
from pipeline.journal import Journal
from pipeline.manifest import Manifest, results_table, write_results
from pipeline.models import Prepared, Presigned, Rejected, Row, RowResult, Status, Summary
from pipeline.naming import upload_name
from pipeline.progress import Progress

__all__ = ["default_paths", "run", "run_async"]

log = structlog.get_logger("pipeline.runner")

_FLUSH_EVERY = 512
_INTERRUPTED = ("interrupted", "the run stopped before this row finished; run the same command again to resume")


def default_paths(settings: Settings, manifest_path: Path | None) -> tuple[Path | None, Path | None]:
    """Where results and journal go when not given: beside the manifest (``x.results.parquet``,
    ``x.journal.sqlite``). In-memory manifests get no default results file and a temporary journal."""
    out, journal = settings.out, settings.journal
    if out is None and manifest_path is not None:
        out = manifest_path.with_name(manifest_path.stem + ".results.parquet")
    if settings.dry_run:
        journal = None  # a dry run never touches a real journal
    elif journal is None and out is not None:
        journal = out.with_name(out.name.split(".")[0] + ".journal.sqlite")
    return out, journal


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    while chunk := list(islice(rows, size)):
        yield chunk


@dataclass
class _Content:
    """A source content (sha256) being uploaded in this run: later identical rows wait on ``key``."""

    first_key: str
    key: asyncio.Future[str | None]


class _Run:
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
        self.journal.record(result)
        self.progress.update(result.status.value)
        self._log_row(result)

    def record_reject(self, result: RowResult) -> None:
        """Rejections are cheap to redo, so they are committed in groups (see the 1M-row benchmark)."""
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
                self._release_content(out, None)
            elif self.stop.is_set():
                self._release_content(out, None)
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
            key = await asyncio.shield(entry.key)
            if key is not None:
                return entry.first_key, key
            return entry.first_key, None
        found = self.journal.find_by_sha256(sha)
        if found is not None and found[0] != row.key:
            return found[0], (found[1] if self.s.dedupe else None)
        self.content[sha] = _Content(row.key, asyncio.get_running_loop().create_future())
        return None, None

    def _release_content(self, prepared: Prepared, key: str | None) -> None:
        entry = self.content.pop(prepared.source_sha256, None)
        if entry is not None and not entry.key.done():
            entry.key.set_result(key)

    async def upload_worker(self) -> None:
        assert self.client is not None
        while (item := await self.queue.get()) is not None:
            row, prepared, duplicate_of = item
            if self.stop.is_set():
                self._release_content(prepared, None)
                continue
            async def on_presigned(p: Presigned, row: Row = row, journal: Journal = self.journal) -> None:
                journal.mark_presigned(row.index, row.key, p.thumbnail_key)

            try:
                outcome = await self.client.upload(
                    upload_name(row, prepared), prepared.data, prepared.content_type,
                    confirm=self.s.confirm, on_presigned=on_presigned,
                )
            except FatalApiError as exc:
                self._release_content(prepared, None)
                if self.fatal is None:
                    self.fatal = exc
                    log.error("fatal_api_error", error=str(exc), status=exc.status, code=exc.code)
                self.stop.set()
                continue
            except asyncio.CancelledError:
                self._release_content(prepared, None)
                raise
            except Exception as exc:
                # A bug, not an API answer: the row fails with a reason instead of killing the run.
                self._release_content(prepared, None)
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
            self._release_content(prepared, outcome.thumbnail_key)

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


def _finish_results(journal: Journal, rows: int, counts: Counter[str], reasons: Counter[str]) -> Iterator[RowResult]:
    """Journal results in input order; unfinished rows come out as ``pending`` with reason ``interrupted``."""
    for r in journal.results(rows):
        if not r.status.terminal:
            r = RowResult(r.index, r.key, Status.PENDING, reason=_INTERRUPTED[0], detail=_INTERRUPTED[1])
        counts[r.status.value] += 1
        if r.reason:
            reasons[r.reason] += 1
        yield r


async def run_async(
    settings: Settings, source: Any, *, handle_signals: bool = False, collect_results: bool = False
) -> Summary:
    """Run one ingest of ``source`` (a manifest path, a pyarrow Table or a pandas DataFrame).

    Raises ``ConfigError``/``ManifestError``/``JournalMismatchError`` before any upload when the input or the
    settings are unusable. Otherwise always writes the results (also on interrupt and on a fatal API
    answer) and returns a ``Summary`` whose ``exit_code`` follows the CLI contract.
    """
    started = time.monotonic()
    manifest = Manifest.open(source, settings.columns, root=settings.root, batch_size=settings.batch_size)
    info = await asyncio.to_thread(manifest.scan)
    manifest_path = Path(source) if isinstance(source, (str, Path)) else None
    out, journal_path = default_paths(settings, manifest_path)
    tmp = tempfile.TemporaryDirectory(prefix="thumbnail-ingest-") if journal_path is None else None
    jpath = journal_path or Path(tmp.name if tmp else ".") / "journal.sqlite"
    with contextlib.ExitStack() as stack:
        if tmp is not None:
            stack.enter_context(tmp)
        journal = stack.enter_context(
            Journal.open(jpath, fingerprint=info.fingerprint, rows=info.rows,
                         workspace=settings.api.workspace, manifest_name=manifest.name)
        )
        orphaned = journal.mark_orphans_from_inflight()
        before = journal.counts()
        already = sum(n for st, n in before.items() if st in ("uploaded", "rejected", "skipped")) + (
            0 if settings.retry_failed else before.get("failed", 0))
        log.info("run_started", manifest=manifest.name, rows=info.rows, already_done=already,
                 redo_in_flight=orphaned, dry_run=settings.dry_run, journal=str(journal_path) if journal_path else None)
        progress = Progress(info.rows, enabled=settings.progress, initial=already)
        client = None if settings.dry_run else ApiClient(settings.api)
        run = _Run(settings, manifest, journal, progress, client)
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, run.on_signal)
        try:
            if already < info.rows:
                if client is not None:
                    async with client:
                        await run.execute()
                else:
                    await run.execute()
        except asyncio.CancelledError:
            run.interrupted = True
            if not run.abandoned:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            if handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
            progress.close()
            counts: Counter[str] = Counter()
            reasons: Counter[str] = Counter()
            table = None
            # Written on every exit path (done, interrupted, fatal): the journal holds the truth.
            if out is not None:
                write_results(out, manifest, _finish_results(journal, info.rows, counts, reasons))
                if collect_results:
                    table = results_table(manifest, _finish_results(journal, info.rows, Counter(), Counter()))
            else:
                table = results_table(manifest, _finish_results(journal, info.rows, counts, reasons))
        elapsed = time.monotonic() - started
        done_now = max(0, sum(progress.counts.values()))
        if run.fatal is not None:
            code = 3
        elif run.interrupted:
            code = 130
        elif counts.get("failed", 0) or counts.get("pending", 0):
            code = 1
        else:
            code = 0
        stats = getattr(client, "stats", None)
        summary = Summary(
            total=info.rows, by_status=dict(counts), by_reason=dict(reasons), duration_s=elapsed,
            rows_per_s=done_now / elapsed if elapsed > 0 else 0.0, results_path=out, journal_path=journal_path,
            exit_code=code, interrupted=run.interrupted, retries=dict(getattr(stats, "retries", {}) or {}),
            results=table, error=str(run.fatal) if run.fatal else None,
        )
        log.info("run_finished", **summary.as_dict())
        return summary


def run(settings: Settings, source: Any, *, handle_signals: bool = False, collect_results: bool = False) -> Summary:
    """Synchronous ``run_async`` in a fresh event loop."""
    return asyncio.run(run_async(settings, source, handle_signals=handle_signals, collect_results=collect_results))
