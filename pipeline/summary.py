"""``Summary``: what a run returns (counts, timing, where things are, the results table)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.models import ExitCode

if TYPE_CHECKING:
    import pyarrow as pa

    from pipeline.errors import FatalApiError

__all__ = ["Summary"]


@dataclass(frozen=True)
class Summary:
    """What a run returns: counts, timing, where things are, and the results table."""

    total: int
    by_status: dict[str, int]
    by_reason: dict[str, int]
    duration_s: float
    rows_per_s: float
    results_path: Path | None
    journal_path: Path | None
    exit_code: ExitCode
    interrupted: bool = False
    retries: dict[str, int] = field(default_factory=dict)
    results: pa.Table | None = field(default=None, repr=False)
    error: str | None = None
    """The fatal API answer that stopped the run (exit code 3), as one sentence."""
    this_run: dict[str, int] = field(default_factory=dict)
    """Rows per status finished by this run only (``by_status`` counts the whole manifest)."""
    planned: dict[str, int] = field(default_factory=dict)
    """What the run did, counting only rows that passed prepare: ``new``, ``changed``, ``person_changed``,
    ``recheck``, ``retry``, ``unfinished``, ``expired`` (uploaded, or in a dry run to upload), ``rejected`` (never
    uploaded), ``finished`` (left alone), ``redo_in_flight``, and the attach route's ``attach``, ``person_full``,
    ``person_not_found``. A dry run's counts are what a real run would do now."""
    fatal_type: str | None = None
    """The class name of the fatal API error, when ``error`` is set."""
    fatal: FatalApiError | None = field(default=None, repr=False, compare=False)
    """The fatal API error itself (the Python API raises it, keeping its type, ``status`` and ``code``)."""
    attach: dict[str, int] = field(default_factory=dict)
    """With ``--attach``: ``persons_created``, ``persons_extended``, ``thumbnails_attached`` and
    ``thumbnails_superseded`` (rows attached again: their earlier thumbnail stays) by this run (a dry run:
    ``persons_to_create``, ``persons_to_extend``, ``thumbnails_to_attach``, ``person_full``, ``invalid_person``,
    ``names_not_looked_up``)."""

    run_id: str | None = None
    """This run's id (the results' ``run_id`` of the rows it changed)."""
    not_in_manifest: dict[str, int] = field(default_factory=dict)
    """Rows the journal holds from earlier runs that this input does not name, per status (their thumbnails
    stay where they are: attached ones with their persons)."""
    warnings: tuple[str, ...] = ()
    """Sentences the summary shows after the counts (rows whose keys will expire unattached, ...)."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (no results table)."""
        return {
            "total": self.total,
            "by_status": dict(self.by_status),
            "by_reason": dict(self.by_reason),
            "duration_s": round(self.duration_s, 3),
            "rows_per_s": round(self.rows_per_s, 2),
            "results_path": str(self.results_path) if self.results_path else None,
            "journal_path": str(self.journal_path) if self.journal_path else None,
            "exit_code": self.exit_code,
            "interrupted": self.interrupted,
            "retries": dict(self.retries),
            "error": self.error,
            "this_run": dict(self.this_run),
            "planned": dict(self.planned),
            "attach": dict(self.attach),
            "run_id": self.run_id,
            "not_in_manifest": dict(self.not_in_manifest),
            "warnings": list(self.warnings),
        }
