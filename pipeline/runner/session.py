"""``RunSession``: one run from start-up to shut-down.

Start-up checks everything that can be checked before the first upload: the manifest (format, columns,
duplicate keys), where results and journal go (writable, a format that holds the columns, not the manifest
itself, a dry run never over a results file holding keys), the journal (lock, workspace, format upgrade) and
the endpoint (it answers). Then the stages run under one supervisor (a stage that fails stops the others; no
wait is left hanging), and shut-down always writes the results from the spill and the journal, on success,
interrupt, fatal answer or full disk alike, with signal handlers still in place so a signal during the write
either lets it finish or leaves the previous file intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import structlog

from pipeline.attach import PersonsApi
from pipeline.client import ApiClient
from pipeline.config import Settings
from pipeline.errors import ConfigError, FatalApiError, LocalWriteError, ManifestError
from pipeline.fetch import Fetcher, is_remote_manifest, open_remote_manifest
from pipeline.journal import Journal
from pipeline.journal.location import default_journal
from pipeline.journal.lock import waiting
from pipeline.manifest import Manifest, ManifestInfo
from pipeline.models import ExitCode, Summary
from pipeline.progress import Progress
from pipeline.results import (
    check_results_target,
    remove_stale_temps,
)
from pipeline.runner.attach_dry import dry_lookup, dry_plan
from pipeline.runner.attach_prep import AttachBook, collect, open_attach
from pipeline.runner.attach_route import AttachRoute
from pipeline.runner.attach_stage import AttachStage
from pipeline.runner.control import RunControl
from pipeline.runner.counting import honest_plan, not_in_manifest, unattached_warning, would_attach
from pipeline.runner.ending import nothing_found, run_report, write_run_results
from pipeline.runner.identity import check_ids
from pipeline.runner.paths import RunPaths, check_distinct, holds_keys, run_paths
from pipeline.runner.pool import make_pool, new_run_id
from pipeline.runner.recorder import Recorder
from pipeline.runner.records import Pipe
from pipeline.runner.spill import ResultCounts, Spill
from pipeline.runner.stages import (
    Drain,
    FetchStage,
    PlanStage,
    PrepareStage,
    ReadStage,
    Stage,
    UploadStage,
    supervise,
)
from pipeline.runner.stats import RunStats, check_metrics_target

__all__ = ["RunPaths", "RunSession", "run_paths"]

log = structlog.get_logger("pipeline.runner")


class RunSession:
    """One run of ``source`` (a manifest path, a pyarrow Table or a pandas DataFrame) with ``settings``."""

    def __init__(self, settings: Settings, source: Any, *, handle_signals: bool = False,
                 collect_results: bool = False, clock: Callable[[], float] = time.monotonic,
                 on_control: Callable[[RunControl], None] | None = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.s = settings
        self.source = source
        self.handle_signals = handle_signals
        self.collect_results = collect_results
        self.clock = clock
        self.sleep = sleep
        """What the ``--stats`` ticks wait on (tests pass a virtual one)."""
        self.on_control = on_control
        self.client: ApiClient | None = None
        self.route: AttachRoute | None = None
        self.attach_stage: AttachStage | None = None
        self.dry_attach: dict[str, int] = {}
        """With ``--attach``: the stage (its ``book`` counts persons and keys; ``lags`` upload-to-attach s)."""
        self.remote_base: str | None = None
        """The URL folder of a manifest read from object storage or the web: what relative paths joined."""
        self.run_id = new_run_id()
        """This run's id: the results' ``run_id`` of every row it changes."""

    async def run(self) -> Summary:
        """Check, run, write results, summarise. Raises ``ConfigError`` (and subclasses) before any upload
        when the input or the settings are unusable; everything after start-up ends in a ``Summary``."""
        started = self.clock()
        s = self.s
        with contextlib.ExitStack() as downloads:
            source, base, manifest_path = self.source, None, None
            if is_remote_manifest(source):
                # Read from object storage or the web: downloaded once; relative paths join its URL's folder,
                # and results and journal default to the current folder.
                source = await asyncio.to_thread(open_remote_manifest, str(source), s.fetch)
                downloads.callback(source.unlink, missing_ok=True)
                url = urlsplit(str(self.source))
                folder, _, name = url.path.rpartition("/")
                base = self.remote_base = f"{url.scheme}://{url.netloc}{folder}/"
                manifest_path = Path.cwd() / (name or "manifest.csv")
            elif isinstance(source, (str, os.PathLike)):
                manifest_path = Path(source)
            # Before the manifest is read: a results path or journal naming the manifest (or each other) stops here.
            paths = run_paths(s, manifest_path)
            check_distinct(paths, s.report, manifest_is_file=base is None)
            manifest = Manifest.open(source, s.columns, root=s.root, batch_size=s.batch_size, base=base,
                                     id_prefix=s.id_prefix)
            info = await asyncio.to_thread(manifest.scan)
            return await self._run(manifest, info, paths, started)

    async def _run(self, manifest: Manifest, info: ManifestInfo, paths: RunPaths, started: float) -> Summary:
        s = self.s
        if paths.journal_beside_manifest:
            log.warning("journal_found_beside_manifest", journal=str(paths.journal),
                        action="using it (an earlier release's default); to move on, pass --journal with this "
                               "path, or move the file to " + str(default_journal(s.api.endpoint, s.api.workspace)))
        if paths.out is not None:
            check_results_target(paths.out, manifest.schema, manifest=paths.manifest, rows=info.rows)
            if s.dry_run and paths.out.exists() and holds_keys(paths.out):
                raise ConfigError(f"{paths.out} holds the keys of a real run; a dry run does not replace it: "
                                  "choose another --out.")
            remove_stale_temps(paths.out)
        check_metrics_target(s.metrics_file)
        with contextlib.ExitStack() as stack:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="thumbnail-ingest-")))
            if s.dry_run:  # a snapshot of the real journal: never waits on a run holding it
                journal = Journal.scratch(paths.journal, scratch / "journal.sqlite", workspace=s.api.workspace)
            else:  # a cron run that finds last night's still going waits a little, then stops (exit 75)
                held = paths.journal
                journal = await waiting(lambda: Journal.open(held, workspace=s.api.workspace), s.journal_wait)
            stack.callback(journal.close)
            journal.run_id = self.run_id
            if manifest.has_persons:  # before any write: another archive's ids must not take this one's rows
                await asyncio.to_thread(check_ids, manifest, journal)
            redo = journal.reset_inflight()
            person_rows = await asyncio.to_thread(collect, manifest, journal) if s.attach else None
            # Beside the results (checked writable, with room); without a results file, in the scratch folder.
            spill_dir = paths.out.parent if paths.out is not None else scratch
            spill_name = (paths.out or scratch / "results").name
            spill = Spill(spill_dir / f".{spill_name}.{os.getpid()}.{secrets.token_hex(4)}.tmp", manifest.schema)
            stack.callback(spill.remove)
            control = RunControl()
            if self.on_control is not None:
                self.on_control(control)
            log.info("run_started", run_id=self.run_id, manifest=manifest.name, rows=info.rows, dry_run=s.dry_run,
                     journal=str(paths.journal), redo_in_flight=redo,
                     migrated_from=journal.migrated_from or None)
            progress = Progress(info.rows, enabled=s.progress)
            recorder = Recorder(journal, progress)
            stats = RunStats(run_id=self.run_id, total=info.rows, counts=progress.counts, retries=self._retries,
                             interval=s.stats, log_progress=not progress.drawn, metrics_file=s.metrics_file,
                             clock=self.clock, sleep=self.sleep)
            stats.start()
            loop = asyncio.get_running_loop()
            if self.handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, control.on_signal)
                    stack.callback(loop.remove_signal_handler, sig)
            client = self.client = None if s.dry_run else ApiClient(s.api)
            if client is not None:
                control.on_interrupt(client.halt)  # a signal ends the waits of rows that hold no key
            plan: PlanStage | None = None
            try:
                if client is not None:
                    async with client:
                        try:
                            await client.preflight()
                        except FatalApiError as exc:
                            control.fail(exc)  # the stages still read every row, so the results list them
                        attach = await open_attach(client, journal, control, person_rows, s.persons)
                        plan = await self._stages(manifest, journal, recorder, control, spill, client, attach)
                else:
                    plan = await self._stages(manifest, journal, recorder, control, spill, None)
                    if person_rows is not None and not control.stopping.is_set():
                        # Counted over the rows that passed prepare (or hold a key) only, and looked up (read-only,
                        # when a key pair is found) only for them: the plan a real run then carries out.
                        rows = would_attach(person_rows, journal)
                        infos, why_not = await dry_lookup(s.api, s.persons, journal, rows)
                        self.dry_attach = dry_plan(rows, journal, s.persons.person_max, infos, why_not)
            except FatalApiError as exc:
                control.fail(exc)
            except LocalWriteError as exc:
                control.fail_local(exc)
            except ManifestError as exc:
                control.fail_input(exc)
            except asyncio.CancelledError:
                if not control.abandoned:
                    raise
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
            finally:
                stats.stop()
                progress.close()
                recorder.summarise()
            counts = ResultCounts()
            failed_before = control.local_error
            table = await write_run_results(s, paths, manifest.schema, journal, spill, control, plan, counts,
                                            keep=self.collect_results or paths.out is None)
            # Written unless a second signal abandoned it or the disk refused it: the summary names no file
            # the run did not write.
            written = not control.abandoned and control.local_error is failed_before
            summary = self._summary(info.rows, started, paths, control, recorder, plan, counts, table, redo,
                                    journal.counts(), written=written)
            stats.finish(int(summary.exit_code))
        if s.report is not None and summary.results_path is not None and summary.results_path.exists():
            await asyncio.to_thread(self._report, summary, paths)
        return summary

    def _retries(self) -> dict[str, int]:
        """The client's retries so far, per kind (none before the client exists, or in a dry run)."""
        return dict(self.client.stats.retries) if self.client is not None else {}

    def _report(self, summary: Summary, paths: RunPaths) -> None:
        """The HTML report of this run (a failure to write it is logged, never the run's failure)."""
        assert summary.results_path is not None
        # A remote manifest's relative paths name objects beside it, never files in the current folder.
        root = self.s.root or self.remote_base or (paths.manifest.parent if paths.manifest is not None else None)
        run_report(self.s, summary.results_path, paths.journal, root)

    async def _stages(self, manifest: Manifest, journal: Journal, recorder: Recorder, control: RunControl,
                      spill: Spill, client: ApiClient | None,
                      attach: tuple[PersonsApi, AttachBook] | None = None) -> PlanStage:
        s = self.s
        pool, size = make_pool(s)
        try:
            async with Fetcher(s.fetch) as fetcher:
                batches: Pipe[Any] = Pipe(2)
                jobs: Pipe[Any] = Pipe(4 * size)
                fetched: Pipe[Any] = Pipe(2 * size)  # fetched bytes wait here: few, so memory stays flat
                ready: Pipe[Any] = Pipe(s.api.concurrency)
                route = None
                if attach is not None:
                    # About 20 s of attach calls wait here: uploads that outrun the attach cap slow down instead
                    # of piling up keys that wait ever longer (a bounded upload-to-attach lag).
                    attachable: Pipe[Any] = Pipe(int(s.persons.attach_rate * 20) or 1024)
                    route = self.route = AttachRoute(attach[1], recorder, attachable)
                    self.attach_stage = AttachStage(attach[0], journal, control, attach[1], attachable,
                                                    s.persons.person_max, s.persons.attach_within, self.clock,
                                                    recorder.this_run)
                plan = PlanStage(s, journal, recorder, control, batches, jobs, fetcher, route)
                prep = PrepareStage(s, journal, recorder, control, pool, 4 * size, fetched, ready, plan.passed)
                stages: list[Stage] = [ReadStage(manifest, spill, batches, control), plan,
                                       FetchStage(journal, recorder, control, fetcher, jobs, fetched), prep]
                if self.attach_stage is not None:
                    stages.append(self.attach_stage)
                if client is not None:
                    stages.append(UploadStage(s, journal, recorder, control, client, prep, ready, route,
                                              unattached=plan.unattached))
                else:
                    stages.append(Drain(ready))
                await supervise(stages)
                return plan
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _summary(self, total: int, started: float, paths: RunPaths, control: RunControl, recorder: Recorder,
                 plan: PlanStage | None, counts: ResultCounts, table: pa.Table | None, redo: int,
                 journal_counts: dict[str, int], *, written: bool) -> Summary:
        elapsed = self.clock() - started
        done_now = sum(n for status, n in recorder.this_run.items() if status != "unchanged")
        error, code = None, ExitCode.OK
        if control.fatal is not None:
            code, error = ExitCode.FATAL, str(control.fatal)
        elif control.local_error is not None:
            code, error = ExitCode.FAILED, str(control.local_error)
        elif control.input_error is not None:
            code, error = ExitCode.USAGE, str(control.input_error)
        elif control.interrupted or control.abandoned:
            code = ExitCode.INTERRUPTED
        elif counts.with_path and counts.with_path_not_found == counts.with_path:
            code, error = ExitCode.USAGE, nothing_found(counts.with_path, self.s, paths, self.remote_base)
        elif counts.by_status.get("failed") or (counts.by_status.get("pending") and not (plan and plan.limited)):
            code = ExitCode.FAILED
        planned = honest_plan(plan, self.route.planned if self.route is not None else {}, recorder.this_run)
        if redo:
            planned["redo_in_flight"] = redo
        warnings = unattached_warning(plan.unattached if plan is not None else [], self.s)
        return Summary(
            total=total, by_status=dict(counts.by_status), by_reason=dict(counts.by_reason), duration_s=elapsed,
            rows_per_s=done_now / elapsed if elapsed > 0 else 0.0, results_path=paths.out if written else None,
            # A dry run reads a copy of the journal: it names the real one only when there was one to read.
            journal_path=paths.journal if not self.s.dry_run or paths.journal.exists() else None, exit_code=code,
            interrupted=control.interrupted or control.abandoned,
            retries=dict(self.client.stats.retries) if self.client is not None else {}, results=table,
            error=error, this_run={k: n for k, n in recorder.this_run.items() if n}, planned=planned,
            fatal_type=type(control.fatal).__name__ if control.fatal is not None else None, fatal=control.fatal,
            attach=self.attach_stage.book.counts() if self.attach_stage is not None else dict(self.dry_attach),
            run_id=self.run_id, not_in_manifest=not_in_manifest(journal_counts, counts.in_journal),
            warnings=warnings,
        )
