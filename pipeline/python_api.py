"""The Python API for notebooks and scripts: ``ingest`` (sync) and ``ingest_async``.

Both accept a manifest path, a pyarrow Table or a pandas DataFrame and return a ``Summary`` whose
``results`` is a pyarrow Table (``summary.results.to_pandas()`` works).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import structlog

from pipeline import logs, runner
from pipeline.config import (
    DEFAULT_ENDPOINT,
    DEFAULT_PRESIGN_PATH,
    DEFAULT_STATUS_PATH,
    ApiSettings,
    ColumnMap,
    Credentials,
    Settings,
    load_credentials,
)
from pipeline.errors import FatalApiError
from pipeline.models import ImagePolicy, Summary

__all__ = ["ingest", "ingest_async", "make_settings"]


def make_settings(
    *,
    workspace: str,
    endpoint: str = DEFAULT_ENDPOINT,
    credentials: Credentials | None = None,
    out: str | Path | None = None,
    journal: str | Path | None = None,
    root: str | Path | None = None,
    rate: float = 50.0,
    confirm_rate: float = 1000.0,
    confirm: bool = True,
    concurrency: int = 16,
    workers: int = 0,
    use_processes: bool = False,
    max_side: int | None = None,
    dry_run: bool = False,
    retry_failed: bool = True,
    dedupe: bool = False,
    keep_metadata: bool = False,
    verify_pixels: bool = False,
    path_column: str = "path",
    id_column: str | None = "id",
    file_name_column: str | None = "file_name",
    presign_path: str = DEFAULT_PRESIGN_PATH,
    status_path: str = DEFAULT_STATUS_PATH,
    progress: bool = True,
    log_format: str = "auto",
) -> Settings:
    """Build validated ``Settings``; credentials default to the environment, then ``~/.ncloud/configure``.

    A dry run needs no credentials. Raises ``ConfigError`` with one sentence on any bad value.
    """
    if credentials is None:
        credentials = Credentials("dry-run", "dry-run") if dry_run else load_credentials()
    api = ApiSettings(
        workspace=workspace, credentials=credentials, endpoint=endpoint.rstrip("/"), presign_path=presign_path,
        status_path=status_path, rate=rate, confirm_rate=confirm_rate, concurrency=concurrency,
    )
    return Settings(
        api=api,
        out=Path(out) if out is not None else None,
        journal=Path(journal) if journal is not None else None,
        root=Path(root) if root is not None else None,
        columns=ColumnMap(path=path_column, id=id_column, file_name=file_name_column),
        policy=ImagePolicy(max_side=max_side, keep_metadata=keep_metadata, verify_pixels=verify_pixels),
        confirm=confirm, workers=workers, use_processes=use_processes, dry_run=dry_run,
        retry_failed=retry_failed, dedupe=dedupe, log_format=log_format, progress=progress,
    )


def _raise_if_fatal(summary: Summary) -> Summary:
    if summary.exit_code == 3:
        exc = FatalApiError(summary.error or "the API refused the run")
        exc.summary = summary  # type: ignore[attr-defined]
        raise exc
    return summary


async def ingest_async(source: Any, **options: Any) -> Summary:
    """Ingest ``source`` from inside a running event loop (e.g. ``await ingest_async(df, workspace=...)`` in
    Jupyter). Options are those of ``make_settings``. Raises ``FatalApiError`` (with ``.summary``) when the
    API refused the run (auth, permission, workspace, quota), ``ConfigError`` for bad input."""
    settings = make_settings(**options)
    if not structlog.is_configured():
        # Without this, structlog's default prints debug events (one per rejected row) into the notebook.
        # A caller who configured structlog keeps their configuration.
        logs.configure_logging(settings.log_format)
    return _raise_if_fatal(await runner.run_async(settings, source, collect_results=True))


def ingest(source: Any, **options: Any) -> Summary:
    """Synchronous ``ingest_async``. Works in a plain script and inside a running loop (a Jupyter cell): there
    it runs on a helper thread and blocks until done."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(ingest_async(source, **options))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(ingest_async(source, **options))
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="thumbnail-ingest", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    result: Summary = box["value"]
    return result
