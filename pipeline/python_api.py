"""The Python API for notebooks and scripts: ``ingest`` (sync) and ``ingest_async``.

Both accept a manifest path, a pyarrow Table, a pandas DataFrame or any table offering the Arrow stream
interface (``__arrow_c_stream__``: polars, DuckDB relations) and return a ``Summary`` whose ``results`` is a
pyarrow Table (``summary.results.to_pandas()`` gives ``width``, ``height``, ``bytes`` as pandas' ``Int64``).
Every error names keywords (``path_column=``, ``root='/data'``), never the CLI's flags. Without ``journal=``,
the journal is the one the CLI uses too: one per endpoint and workspace in the user's state folder
(``journal.location``), so ``df.head(10)`` then ``df``, or any DataFrame naming the same keys, resumes instead of
uploading again.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from typing import Any

import structlog

from pipeline import logs, runner
from pipeline.config import Settings
from pipeline.errors import ConfigError, FatalApiError, ManifestError
from pipeline.models import ExitCode
from pipeline.options import build_settings, python_message
from pipeline.runner import RunControl
from pipeline.summary import Summary

__all__ = ["ingest", "ingest_async", "make_settings"]

log = structlog.get_logger("pipeline")


def make_settings(**options: Any) -> Settings:
    """Validated ``Settings`` from keyword options: every ``ingest`` flag as a keyword (``workspace``,
    ``endpoint``, ``rate``, ``path_column``, ``confirm=False``, ``use_processes``, ...; see
    ``pipeline.options``), plus ``credentials`` (default: the environment, then ``~/.ncloud/configure``; a dry
    run needs none). Raises ``ConfigError`` with one sentence naming the keyword (``path_column=``)."""
    batch_size = options.pop("batch_size", None)  # a tuning knob for tests and benchmarks, not a user option
    settings = build_settings(options, style="python")
    return settings if batch_size is None else replace(settings, batch_size=int(batch_size))


def _in_python(exc: BaseException, options: dict[str, Any]) -> BaseException:
    """``exc`` with its message in the Python API's words (``path_column=``, not ``--path-column``), same
    type and attributes: the runner and the layers under it word their messages for the command line."""
    if isinstance(exc, (ConfigError, FatalApiError)) and exc.args and isinstance(exc.args[0], str):
        exc.args = (python_message(exc.args[0], options), *exc.args[1:])
    return exc


def _settle(summary: Summary, options: dict[str, Any]) -> Summary:
    """Raise what the run ended on, keeping its type: the original ``FatalApiError`` subclass (with
    ``status``, ``code`` and ``.summary``), or ``ManifestError`` when no photo path exists; either worded
    with keywords."""
    if summary.exit_code == ExitCode.FATAL and summary.fatal is not None:
        exc = summary.fatal
        exc.summary = summary  # type: ignore[attr-defined]
        raise _in_python(exc, options)
    if summary.exit_code == ExitCode.USAGE and summary.error:
        raise ManifestError(python_message(summary.error, options))
    if summary.interrupted:
        log.warning("interrupted", action="state saved; run the same cell again to resume",
                    journal=str(summary.journal_path) if summary.journal_path else None)
    return summary


async def _run(source: Any, control_box: list[RunControl] | None, options: dict[str, Any]) -> Summary:
    settings = make_settings(**options)
    if not structlog.is_configured():
        # Without this, structlog's default prints debug events (one per rejected row) into the notebook.
        # A caller who configured structlog keeps their configuration.
        logs.configure_logging(settings.log_format, secrets=[settings.api.credentials.secret_key])
    on_control = control_box.append if control_box is not None else None
    in_main = threading.current_thread() is threading.main_thread()
    try:
        return await runner.run_async(settings, source, collect_results=True, on_control=on_control,
                                      handle_signals=in_main and control_box is None)
    except (ConfigError, FatalApiError) as exc:
        _in_python(exc, options)
        raise
    finally:
        logs.flush_retry_summary()


async def ingest_async(source: Any, **options: Any) -> Summary:
    """Ingest ``source`` from inside a running event loop (e.g. ``await ingest_async(df, workspace=...)`` in
    Jupyter). Options are those of ``make_settings``. A cancellation (a kernel interrupt) stops the run like
    Ctrl-C: rows in flight finish, the results are written and the journal is released before it returns.
    Raises the ``FatalApiError`` subclass the API answered (with ``.summary``), ``ConfigError`` for bad input."""
    box: list[RunControl] = []
    task = asyncio.ensure_future(_run(source, box, options))
    while True:
        try:
            return _settle(await asyncio.shield(task), options)
        except asyncio.CancelledError:
            if task.done() or not box:
                raise
            box[0].on_signal()  # first: finish rows in flight; a second cancellation abandons them
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()


def ingest(source: Any, **options: Any) -> Summary:
    """Synchronous ``ingest_async``. In a plain script it runs here, with Ctrl-C handled like the CLI; inside a
    running loop (a Jupyter cell) on a helper thread, and a kernel interrupt stops it like Ctrl-C (rows in
    flight finish, the state is saved, the journal is released) before this returns."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _settle(asyncio.run(_run(source, None, options)), options)
    box: dict[str, Any] = {}
    controls: list[RunControl] = []
    finished = threading.Event()

    def target() -> None:
        try:
            box["value"] = asyncio.run(_run(source, controls, options))
        except BaseException as exc:
            box["error"] = exc
        finally:
            finished.set()

    thread = threading.Thread(target=target, name="thumbnail-ingest", daemon=True)
    thread.start()
    interrupts = 0
    # An Event, not Thread.join/is_alive: a join interrupted by KeyboardInterrupt can leave is_alive() False
    # while the thread still runs (CPython gh-90882).
    applied = 0
    while True:
        try:
            if finished.wait(0.2):
                break
        except KeyboardInterrupt:
            interrupts += 1
        while applied < interrupts and controls:  # an interrupt during start-up applies once the run exists
            controls[0].request_stop_threadsafe(abandon=applied > 0)
            applied += 1
    if "error" in box:
        raise box["error"]
    return _settle(box["value"], options)
