"""How a run ends: the results written from the spill and the journal (surviving a second signal), and the
sentences for rows a stopped run did not finish and for a run whose paths all missed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import structlog

from pipeline.config import Settings
from pipeline.errors import IngestError, LocalWriteError
from pipeline.journal import Journal
from pipeline.models import ExitCode
from pipeline.results import ResultChunk, folded, results_table, write_results
from pipeline.runner.control import RunControl
from pipeline.runner.paths import RunPaths
from pipeline.runner.spill import ResultCounts, Spill, WriteAborted
from pipeline.runner.stages import PlanStage

__all__ = ["exit_of", "nothing_found", "run_report", "unfinished_reason", "write_run_results"]

log = structlog.get_logger("pipeline.runner")


async def write_run_results(settings: Settings, paths: RunPaths, schema: pa.Schema, journal: Journal, spill: Spill,
                            control: RunControl, plan: PlanStage | None, counts: ResultCounts, *,
                            keep: bool) -> pa.Table | None:
    """Write the results to ``paths.out`` (and build the table too when ``keep``) from the spill, in a
    thread; ``counts`` is filled as rows go by. A signal during the write lets it finish; a second one stops
    it between batches with the previous file intact (``control.abandoned``). Returns the table when kept."""
    if control.abandoned:
        log.warning("results_not_written", reason="abandoned; the previous results file is unchanged")
        return None
    unfinished = unfinished_reason(control, plan, settings.limit)
    abort = threading.Event()
    control.writing_results = True
    fold = folded(schema, settings.columns.person_id)

    def write() -> pa.Table | None:
        if keep:
            chunks: list[ResultChunk] = list(spill.chunks(journal, unfinished, counts, abort))
            if paths.out is not None:
                write_results(paths.out, schema, chunks, fold=fold)
            return results_table(schema, chunks, fold=fold)
        assert paths.out is not None
        write_results(paths.out, schema, spill.chunks(journal, unfinished, counts, abort), fold=fold)
        return None

    task = asyncio.ensure_future(asyncio.to_thread(write))
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            abort.set()  # a second signal: stop between batches; the temp file goes, the old file stays
            control.abandoned = True
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
        except WriteAborted:
            log.warning("results_not_written", reason="interrupted; the previous results file is unchanged")
            return None
        except LocalWriteError as exc:
            control.fail_local(exc)
            return None
        finally:
            control.writing_results = False


def unfinished_reason(control: RunControl, plan: PlanStage | None, limit: int | None) -> tuple[str, str]:
    """The ``(reason, detail)`` of the rows this run did not finish, by why it stopped."""
    if control.fatal is not None:
        return ("not_reached", "the run stopped on a fatal API answer before this row was done "
                f"({type(control.fatal).__name__}); fix the cause and run the same command again")
    if control.local_error is not None or control.input_error is not None:
        return ("interrupted", "the run stopped (the manifest could not be read, or the journal or results could "
                "not be written) before this row was done; run the same command again")
    if plan is not None and plan.limited and not control.interrupted:
        return ("not_reached", f"past --limit {limit}; run the same command again to go on")
    return ("interrupted", "the run stopped before this row finished; run the same command again to resume")


def exit_of(control: RunControl, counts: ResultCounts, *, limited: bool,
            nothing_found: Callable[[], str]) -> tuple[ExitCode, str | None]:
    """The run's exit code and its one sentence, by the first that holds: a fatal API answer, a local write
    error, a bad manifest, a signal, no photo path existing at all (``nothing_found()`` is then the sentence),
    rows failed or left pending (a ``--limit`` reached is no failure), else OK."""
    stopped = [(control.fatal, ExitCode.FATAL), (control.local_error, ExitCode.FAILED),
               (control.input_error, ExitCode.USAGE)]
    for error, code in stopped:
        if error is not None:
            return code, str(error)
    if control.interrupted or control.abandoned:
        return ExitCode.INTERRUPTED, None
    if counts.with_path and counts.with_path_not_found == counts.with_path:
        return ExitCode.USAGE, nothing_found()
    if counts.by_status.get("failed") or (counts.by_status.get("pending") and not limited):
        return ExitCode.FAILED, None
    return ExitCode.OK, None


def nothing_found(rows: int, settings: Settings, paths: RunPaths, remote_base: str | None) -> str:
    """The one sentence of a run in which no photo path exists, naming what the paths were resolved against."""
    root = settings.root
    if root is not None:
        base = f"--root {root if isinstance(root, str) else root.absolute()}"  # a URL root is text, as given
    elif remote_base is not None:
        base = f"the manifest's folder {remote_base}"
    elif paths.manifest is not None:
        base = f"the manifest's folder {paths.manifest.absolute().parent}"
    else:
        base = f"the current folder {Path.cwd()}"
    return (f"None of the {rows} photo paths exists: they were resolved against {base}; pass --root with "
            "the folder or prefix they are relative to (nothing was uploaded).")


def run_report(settings: Settings, results: Path, journal: Path | None, root: Path | str | None) -> None:
    """Write the run's HTML report (``--report``) from its results; a failure is logged, never the run's."""
    from pipeline.report import ColumnNames, ReportCaps, write_report

    s = settings
    assert s.report is not None
    caps = ReportCaps(presign_per_s=s.api.rate, status_per_min=s.api.confirm_rate, status_checks=s.confirm)
    columns = ColumnNames(path=s.columns.path, id=s.columns.id or "id")
    try:
        info = write_report(results, s.report, journal=None if s.dry_run else journal, root=root, caps=caps,
                            columns=columns)
    except IngestError as exc:
        log.warning("report_not_written", error=str(exc))
        return
    log.info("report_written", path=str(info.path), bytes=info.size_bytes)
