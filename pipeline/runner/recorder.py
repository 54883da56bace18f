"""``Recorder``: every finished row goes through here: journal, progress bar, row log line, this run's counts."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

import structlog

from pipeline.journal import Journal, KnownPerson
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

    # -- every other write of a row's state: the Recorder is the one path from the stages to the journal's rows --
    def presigned(self, key: str, thumbnail_key: str, *, source_sha256: str, source_stamp: str | None,
                  source_path: str) -> None:
        """Journal (committed) the key a row was presigned, before its PUT starts."""
        self.journal.mark_presigned(key, thumbnail_key, source_sha256=source_sha256, source_stamp=source_stamp,
                                    source_path=source_path)

    def reopened(self, key: str) -> None:
        """A row holding a key whose source content changed goes back to ``pending`` (its key an orphan)."""
        self.journal.reopen(key)

    def restamped(self, key: str, stamp: str | None, path: str) -> None:
        """A finished row whose content was shown unchanged: its new stamp and path noted, counted unchanged."""
        self.journal.restamp(key, stamp, path)
        self.unchanged()

    def adopted(self, index: int, source_sha256: str, key: str) -> bool:
        """A version-1 journal's row (keyed by position) with this content, uploaded, is now row ``key``."""
        return self.journal.adopt_legacy(index, source_sha256, key) is not None

    def attached(self, keys: Sequence[str], person: KnownPerson, attached_at: str, *, intent: str,
                 details: Mapping[str, str] | None = None, fresh: Collection[str] = (), counted: bool = True,
                 ) -> None:
        """Rows attached to ``person`` (one transaction with the person and the end of ``intent``); this run's
        counts move ``fresh`` ones (uploaded by this run) from ``uploaded`` to ``attached`` (a reconciliation
        of an earlier run's call: ``counted=False``)."""
        self.journal.mark_attached(keys, person, attached_at, intent=intent, details=details)
        if counted:
            self.count_attached(keys, fresh=fresh)

    def count_attached(self, keys: Sequence[str], *, fresh: Collection[str] = ()) -> None:
        """This run's counts of rows attached (journaled already, by a reconciliation)."""
        self._moved(keys, "attached", fresh)

    def attach_failed(self, keys: Sequence[str], detail: str, *, intent: str, fresh: Collection[str] = ()
                      ) -> list[str]:
        """Rows that keep their key and end ``failed`` (``attach_failed``): journaled, logged, counted; returns
        the keys journaled."""
        failed = [r.key for r in self.journal.mark_attach_failed(keys, detail, intent=intent)]
        for key in failed:
            log.warning("row_failed", row=key, reason="attach_failed", detail=detail)
        self._moved(failed, "failed", fresh)
        return failed

    def _moved(self, keys: Sequence[str], status: str, fresh: Collection[str]) -> None:
        for key in keys:
            if key in fresh:
                self.this_run["uploaded"] -= 1
            self.this_run[status] += 1

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
