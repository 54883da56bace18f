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
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import structlog

from pipeline.attach import PersonsApi
from pipeline.client import ApiClient
from pipeline.client.stopping import RowInterrupted, until
from pipeline.config import Settings
from pipeline.engines.engine import Engine, open_engine
from pipeline.errors import FatalApiError, LocalWriteError, ManifestError
from pipeline.fetch import Fetcher, is_remote_manifest, open_remote_manifest
from pipeline.journal import Journal
from pipeline.journal.lock import waiting
from pipeline.manifest import Manifest, RowBatch
from pipeline.progress import Progress
from pipeline.runner.attach_dry import dry_lookup, dry_plan
from pipeline.runner.attach_prep import AttachBook, collect, open_attach
from pipeline.runner.attach_route import AttachRoute
from pipeline.runner.attach_stage import AttachStage
from pipeline.runner.context import Opened, RunContext, Started, Worked
from pipeline.runner.control import RunControl
from pipeline.runner.counting import honest_plan, not_in_manifest, unattached_warning, would_attach
from pipeline.runner.ending import exit_of, nothing_found, run_report, write_run_results
from pipeline.runner.identity import check_ids
from pipeline.runner.paths import RunPaths, check_distinct, check_targets, run_paths
from pipeline.runner.pool import new_run_id
from pipeline.runner.recorder import Recorder
from pipeline.runner.records import Attachable, Job, Pipe, Ready, drop_job, drop_ready
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
from pipeline.runner.stats import RunStats
from pipeline.summary import Summary

__all__ = ["RunPaths", "RunSession", "run_paths"]

log = structlog.get_logger("pipeline.runner")


def _names_local_files(manifest: Manifest) -> bool:
    """Whether any row of ``manifest`` names a local file (one streaming pass, stopping at the first)."""
    return any(row.source is not None for batch in manifest.row_batches() for row in batch.rows)


class RunSession:
    """One run of ``source`` (a manifest path, a pyarrow Table or a pandas DataFrame) with ``settings``:
    ``run`` opens the input (``_open``), starts the run (``_start``), runs the stages (``_work``) and writes
    the results and the summary (``_finish``); each step returns what the next needs."""

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
        """The API client while the stages run (the stats read its retries)."""
        self.engine: Engine | None = None
        """Where fetch and prepare run (``engines/engine.py``), from ``_open`` to the end of the run."""
        self.run_id = new_run_id()
        """This run's id: the results' ``run_id`` of every row it changes."""

    async def run(self) -> Summary:
        """Check, run, write results, summarise. Raises ``ConfigError`` (and subclasses) before any upload
        when the input or the settings are unusable; everything after start-up ends in a ``Summary``."""
        started = self.clock()
        async with contextlib.AsyncExitStack() as stack:
            opened = await self._open(stack)
            begun = await self._start(stack, opened)
            worked = await self._work(opened.manifest, begun)
            summary = await self._finish(opened, begun, worked, started)
        if self.s.report is not None and summary.results_path is not None and summary.results_path.exists():
            await asyncio.to_thread(self._report, summary, opened)
        return summary

    async def _open(self, stack: contextlib.AsyncExitStack) -> Opened:
        """The manifest opened and scanned, and the run's paths checked (before the manifest is read, a results
        path or journal naming the manifest, or each other, stops the run). A manifest in object storage or
        on the web is downloaded once (removed at the end): its relative paths join its URL's folder, and
        results and journal default to the current folder."""
        s = self.s
        source, base, manifest_path = self.source, None, None
        if is_remote_manifest(source):
            source = await asyncio.to_thread(open_remote_manifest, str(source), s.fetch)
            stack.callback(source.unlink, missing_ok=True)
            url = urlsplit(str(self.source))
            folder, _, name = url.path.rpartition("/")
            base = f"{url.scheme}://{url.netloc}{folder}/"
            manifest_path = Path.cwd() / (name or "manifest.csv")
        elif isinstance(source, (str, os.PathLike)):
            manifest_path = Path(source)
        paths = run_paths(s, manifest_path)
        check_distinct(paths, s.report, manifest_is_file=base is None)
        manifest = Manifest.open(source, s.columns, root=s.root, batch_size=s.batch_size, base=base,
                                 id_prefix=s.id_prefix)
        info = await asyncio.to_thread(manifest.scan)
        check_targets(s, manifest, info, paths)
        # Before the journal or the endpoint: a cluster that cannot serve the run stops it with one sentence.
        self.engine = engine = await asyncio.to_thread(open_engine, s, lambda: _names_local_files(manifest))
        stack.callback(engine.close)
        return Opened(manifest, info, paths, base)

    async def _start(self, stack: contextlib.AsyncExitStack, opened: Opened) -> Started:
        """The journal opened (a dry run: a snapshot; a real run waits ``--journal-wait`` for a run holding
        it), the ids checked against it, the rows a killed run left in flight reset, the persons read, the
        spill, progress, stats and signal handlers set up: everything the stages and the end need."""
        s, manifest, paths = self.s, opened.manifest, opened.paths
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
        log.info("run_started", run_id=self.run_id, manifest=manifest.name, rows=opened.info.rows,
                 dry_run=s.dry_run, journal=str(paths.journal), redo_in_flight=redo,
                 migrated_from=journal.migrated_from or None)
        progress = Progress(opened.info.rows, enabled=s.progress)
        recorder = Recorder(journal, progress)
        stats = RunStats(run_id=self.run_id, total=opened.info.rows, counts=progress.counts, retries=self._retries,
                         interval=s.stats, log_progress=not progress.drawn, metrics_file=s.metrics_file,
                         clock=self.clock, sleep=self.sleep)
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, control.on_signal)
                stack.callback(loop.remove_signal_handler, sig)
        ctx = RunContext(s, journal, recorder, control, self.clock, self.run_id)
        return Started(ctx, spill, progress, stats, redo, person_rows)

    async def _work(self, manifest: Manifest, begun: Started) -> Worked:
        """The stages, to the end or to a stop: what stops them (a fatal answer, a full disk, a bad manifest
        row, a second signal) is left in ``control`` for the summary; the results are written after."""
        ctx, control = begun.ctx, begun.ctx.control
        begun.stats.start()
        built: list[Worked] = []  # the stages' objects once made: what they counted survives their failure
        try:
            return await (self._dry(manifest, begun, built) if self.s.dry_run else self._real(manifest, begun, built))
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
            begun.stats.stop()
            begun.progress.close()
            ctx.recorder.summarise()
        # Stopped by a failure: the plan's counts are not the run's (as before any stage ran), the attach's are.
        return replace(built[0], plan=None) if built else Worked()

    async def _real(self, manifest: Manifest, begun: Started, built: list[Worked]) -> Worked:
        """A real run: the client opened (its preflight failing fatally stops the uploads, yet the stages
        still read every row so the results list them), the persons book opened, the stages run."""
        ctx = begun.ctx
        client = self.client = ApiClient(self.s.api)
        ctx.control.on_interrupt(client.halt)  # a signal ends the waits of rows that hold no key
        async with client:
            try:
                await client.preflight()
            except FatalApiError as exc:
                ctx.control.fail(exc)
            try:  # persons look-ups and the reconciliation of unfinished attach calls hold no key: a signal ends them
                attach = await until(client.halted, open_attach(client, ctx.recorder, ctx.control,
                                                                begun.person_rows, self.s.persons))
            except RowInterrupted:
                attach = None  # the intents stay for the next run; the stages only list the rows
            return await self._stages(manifest, ctx, begun.spill, built, client, attach)

    async def _dry(self, manifest: Manifest, begun: Started, built: list[Worked]) -> Worked:
        """A dry run: the stages without uploads, then (``--attach``) the attach plan, counted over the rows
        that passed prepare (or hold a key) and looked up read-only: what a real run then carries out."""
        ctx = begun.ctx
        worked = await self._stages(manifest, ctx, begun.spill, built, None)
        if begun.person_rows is None or ctx.control.stopping.is_set():
            return worked
        rows = would_attach(begun.person_rows, ctx.journal)
        infos, why_not = await dry_lookup(self.s.api, self.s.persons, ctx.journal, rows, ctx.control)
        return replace(worked, dry_attach=dry_plan(rows, ctx.journal, self.s.persons.person_max, infos, why_not))

    async def _finish(self, opened: Opened, begun: Started, worked: Worked, started: float) -> Summary:
        """The results written (whatever stopped the run) and the summary of what the run did."""
        ctx, control = begun.ctx, begun.ctx.control
        counts = ResultCounts()
        failed_before = control.local_error
        table = await write_run_results(self.s, opened.paths, opened.manifest.schema, ctx.journal, begun.spill,
                                        control, worked.plan, counts,
                                        keep=self.collect_results or opened.paths.out is None)
        # Written unless a second signal abandoned it or the disk refused it: the summary names no file the run
        # did not write.
        written = not control.abandoned and control.local_error is failed_before
        summary = self._summary(opened, begun, worked, counts, table, started, written=written)
        begun.stats.finish(int(summary.exit_code))
        return summary

    def _retries(self) -> dict[str, int]:
        """The client's retries so far, per kind (none before the client exists, or in a dry run)."""
        return dict(self.client.stats.retries) if self.client is not None else {}

    def _report(self, summary: Summary, opened: Opened) -> None:
        """The HTML report of this run (a failure to write it is logged, never the run's failure)."""
        assert summary.results_path is not None
        paths = opened.paths
        # A remote manifest's relative paths name objects beside it, never files in the current folder.
        root = self.s.root or opened.remote_base or (paths.manifest.parent if paths.manifest is not None else None)
        run_report(self.s, summary.results_path, paths.journal, root)

    async def _stages(self, manifest: Manifest, ctx: RunContext, spill: Spill, built: list[Worked],
                      client: ApiClient | None, attach: tuple[PersonsApi, AttachBook] | None = None) -> Worked:
        """The stages wired and run to the end; what they are is put in ``built`` before they start."""
        s, recorder = ctx.settings, ctx.recorder
        engine = self.engine
        assert engine is not None, "_open makes the engine"
        async with Fetcher(s.fetch) as fetcher:
            batches: Pipe[RowBatch] = Pipe(2)
            jobs: Pipe[Job] = Pipe(engine.slots, drop_job)
            # Fetched bytes wait here: few, so memory stays flat.
            fetched: Pipe[Job] = Pipe(max(2, engine.slots // 2), drop_job)
            ready: Pipe[Ready] = Pipe(s.api.concurrency, drop_ready)
            for pipe in (batches, jobs, fetched, ready):  # a stop ends them: no stage takes a new row
                ctx.control.on_stop(pipe.cut)
            route, attach_stage = None, None
            if attach is not None:
                # About 20 s of attach calls wait here: uploads that outrun the attach cap slow down instead
                # of piling up keys that wait ever longer (a bounded upload-to-attach lag).
                attachable: Pipe[Attachable] = Pipe(int(s.persons.attach_rate * 20) or 1024)
                route = AttachRoute(attach[1], recorder, attachable)
                attach_stage = AttachStage(ctx, attach[0], attach[1], attachable)
            plan = PlanStage(ctx, batches, jobs, fetcher, route)
            prep = PrepareStage(ctx, engine, fetched, ready, plan.passed, fetcher=fetcher)
            stages: list[Stage] = [ReadStage(ctx, manifest, spill, batches), plan,
                                   FetchStage(ctx, fetcher, jobs, fetched, engine_fetches=engine.fetches), prep]
            if attach_stage is not None:
                stages.append(attach_stage)
            if client is not None:
                stages.append(UploadStage(ctx, client, ready, route, unattached=plan.unattached))
            else:
                stages.append(Drain(ready))
            built.append(Worked(plan, route, attach_stage))
            try:
                await supervise(stages)
            finally:
                engine.close()  # its workers are done with: gone before the results are written
            return built[0]

    def _summary(self, opened: Opened, begun: Started, worked: Worked, counts: ResultCounts,
                 table: pa.Table | None, started: float, *, written: bool) -> Summary:
        ctx, paths = begun.ctx, opened.paths
        control, recorder, plan = ctx.control, ctx.recorder, worked.plan
        elapsed = self.clock() - started
        done_now = sum(n for status, n in recorder.this_run.items() if status != "unchanged")
        code, error = exit_of(control, counts, limited=plan is not None and plan.limited,
                              nothing_found=lambda: nothing_found(counts.with_path, self.s, paths, opened.remote_base))
        planned = honest_plan(plan, worked.route.planned if worked.route is not None else {}, recorder.this_run)
        if begun.redo:
            planned["redo_in_flight"] = begun.redo
        return Summary(
            total=opened.info.rows, by_status=dict(counts.by_status), by_reason=dict(counts.by_reason),
            duration_s=elapsed, rows_per_s=done_now / elapsed if elapsed > 0 else 0.0,
            results_path=paths.out if written else None,
            # A dry run reads a copy of the journal: it names the real one only when there was one to read.
            journal_path=paths.journal if not self.s.dry_run or paths.journal.exists() else None, exit_code=code,
            interrupted=control.interrupted or control.abandoned, retries=self._retries(), results=table,
            error=error, this_run={k: n for k, n in recorder.this_run.items() if n}, planned=planned,
            fatal_type=type(control.fatal).__name__ if control.fatal is not None else None, fatal=control.fatal,
            attach=worked.attach.book.counts() if worked.attach is not None else dict(worked.dry_attach),
            run_id=self.run_id, not_in_manifest=not_in_manifest(ctx.journal, counts.in_journal),
            warnings=unattached_warning(plan.unattached if plan is not None else [], self.s),
        )

