"""The asyncio orchestration: manifest -> prepare (pool) -> presign/PUT/confirm (workers) -> journal -> results.

``run_async`` checks everything that can be checked before any upload (manifest, journal ownership), runs
the stages (``stages.py``), and always leaves the results written from the journal, the source of truth:
on success, on interrupt and on a fatal API answer alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from pipeline.client import ApiClient
from pipeline.config import Settings
from pipeline.journal import Journal
from pipeline.manifest import Manifest, results_table, write_results
from pipeline.models import ExitCode, RowResult, Status, Summary
from pipeline.progress import Progress
from pipeline.runner.stages import Stages

__all__ = ["default_paths", "run", "run_async"]

log = structlog.get_logger("pipeline.runner")

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
        stem = out.name
        for suffix in (".results.parquet", ".results.csv", out.suffix):
            if stem.lower().endswith(suffix.lower()):
                stem = stem[: -len(suffix)]
                break
        journal = out.with_name(stem + ".journal.sqlite")
    return out, journal


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
    with contextlib.ExitStack() as stack:
        # No journal path (dry run, in-memory input without --out): a throwaway journal, removed at the end.
        jpath = journal_path or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="thumbnail-ingest-"))) / "journal.sqlite"
        journal = stack.enter_context(
            Journal.open(jpath, fingerprint=info.fingerprint, rows=info.rows,
                         workspace=settings.api.workspace, manifest_name=manifest.name)
        )
        orphaned = journal.mark_orphans_from_inflight()
        already = journal.done_count(retry_failed=settings.retry_failed)
        log.info("run_started", manifest=manifest.name, rows=info.rows, already_done=already,
                 redo_in_flight=orphaned, dry_run=settings.dry_run, journal=str(journal_path) if journal_path else None)
        progress = Progress(info.rows, enabled=settings.progress, initial=already)
        client = None if settings.dry_run else ApiClient(settings.api)
        run = Stages(settings, manifest, journal, progress, client)
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
        retries = dict(client.stats.retries) if client is not None else {}
        summary = Summary(
            total=info.rows, by_status=dict(counts), by_reason=dict(reasons), duration_s=elapsed,
            rows_per_s=done_now / elapsed if elapsed > 0 else 0.0, results_path=out, journal_path=journal_path,
            exit_code=ExitCode(code), interrupted=run.interrupted, retries=retries,
            results=table, error=str(run.fatal) if run.fatal else None,
        )
        # People on a console get the summary table from the CLI instead; cron (JSON) gets this event.
        (log.info if settings.log_format == "json" else log.debug)("run_finished", **summary.as_dict())
        return summary


def run(settings: Settings, source: Any, *, handle_signals: bool = False, collect_results: bool = False) -> Summary:
    """Synchronous ``run_async`` in a fresh event loop."""
    return asyncio.run(run_async(settings, source, handle_signals=handle_signals, collect_results=collect_results))
