"""``Recorder``: every finished row goes through here: journal, progress bar, row log line, this run's counts."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace

import structlog

from pipeline.journal import Journal
from pipeline.models import RowResult, Status
from pipeline.progress import Progress
from pipeline.runner.plan import source_identity

__all__ = ["Recorder"]

log = structlog.get_logger("pipeline.runner")

_FLUSH_EVERY = 512
_MAX_DETAIL = 400
LOGGED_PER_REASON = 100
"""Rejected rows logged one by one at INFO for each reason; later ones go to DEBUG and are counted in one
``rows_rejected`` event per reason at the end (a million missing files must not mean a million log lines: the
results file lists every one)."""


def _clipped(result: RowResult, path: str) -> RowResult:
    """The result with its path cell (``source_path``: a key back with another file is a changed row) and a
    ``detail`` short enough for a log line and a results cell (a hostile manifest can hold a path of megabytes,
    and details quote paths)."""
    if result.source_path is None and path:
        result = replace(result, source_path=source_identity(path))
    if result.detail is None or len(result.detail) <= _MAX_DETAIL:
        return result
    cut = _MAX_DETAIL // 2
    return replace(result, detail=f"{result.detail[:cut]}...{result.detail[-cut:]}")


class Recorder:
    """Journals finished rows (rejections in groups: they are cheap to redo), counts them for this run's
    summary, moves the bar and logs one line per rejected or failed row (with its key and path).

    A rejection is counted and logged when it happens, before its group is journaled: ``tail -f`` and the
    bar see it at once, and a rejection whose journal write a crash loses is only redone (cheap) next run."""

    def __init__(self, journal: Journal, progress: Progress) -> None:
        self.journal = journal
        self.progress = progress
        self.this_run: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self._debug = log.bind().is_enabled_for(logging.DEBUG)
        self._pending: list[tuple[RowResult, str]] = []

    def _finish(self, result: RowResult, path: str) -> None:
        self.this_run[result.status.value] += 1
        self.progress.update(result.status.value)
        if result.status is Status.REJECTED:
            reason = result.reason or ""
            self.rejected[reason] += 1
            if self.rejected[reason] <= LOGGED_PER_REASON:
                log.info("row_rejected", row=result.key, path=path, reason=reason, detail=result.detail)
            elif self._debug:
                log.debug("row_rejected", row=result.key, path=path, reason=reason, detail=result.detail)
        elif result.status is Status.FAILED:
            log.warning("row_failed", row=result.key, path=path, reason=result.reason, detail=result.detail)

    def record(self, result: RowResult, path: str) -> None:
        """Journal one finished row now (its own commit); raises ``LocalWriteError`` when the disk refuses."""
        result = _clipped(result, path)
        self.journal.record(result)
        self._finish(result, path)

    def record_later(self, result: RowResult, path: str) -> None:
        """Count and log a rejection now; journal it with the next group (at most ``_FLUSH_EVERY`` rows wait)."""
        result = _clipped(result, path)
        self._pending.append((result, path))
        self._finish(result, path)
        if len(self._pending) >= _FLUSH_EVERY:
            self.flush()

    def unchanged(self) -> None:
        """A row found unchanged after all (its stamp moved, its content did not)."""
        self.this_run["unchanged"] += 1
        self.progress.update(Status.UPLOADED.value)

    def summarise(self) -> None:
        """One ``rows_rejected`` event per reason whose rows were not all logged one by one."""
        for reason, count in sorted(self.rejected.items()):
            if count > LOGGED_PER_REASON:
                log.info("rows_rejected", reason=reason, count=count, logged=LOGGED_PER_REASON,
                         action="every row and its detail is in the results file")

    def flush(self) -> None:
        """Journal the waiting rejections in one transaction."""
        if self._pending:
            batch, self._pending = self._pending, []
            self.journal.record_many([r for r, _ in batch])
