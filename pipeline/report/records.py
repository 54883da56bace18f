"""The records the report's stages hand each other: what was counted, sampled and measured in one pass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.client.settings import ApiSettings

__all__ = [
    "ChangedSample",
    "DryRunEstimate",
    "JournalInfo",
    "PersonsSummary",
    "ReasonCount",
    "ReportCaps",
    "ReportData",
    "ReportInfo",
    "RunStats",
    "SampleRow",
    "Series",
]

_API_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ApiSettings) if f.name in ("rate", "confirm_rate")}


def _default(name: str) -> float:
    value = _API_DEFAULTS[name]
    assert isinstance(value, float)
    return value


@dataclass(frozen=True, slots=True)
class ReportCaps:
    """The rate caps a run used (or a real run will use): drawn on the throughput chart and used for the
    dry-run estimate. Defaults are the client's own defaults; 0 means unlimited."""

    presign_per_s: float = field(default_factory=lambda: _default("rate"))
    status_per_min: float = field(default_factory=lambda: _default("confirm_rate"))
    attach_per_s: float = 10.0
    status_checks: bool = True
    """Whether each upload is confirmed with the status call (``--no-confirm`` turns it off)."""


@dataclass(frozen=True, slots=True)
class ReportInfo:
    """What ``write_report`` wrote: where, how big, and what it counted and embedded."""

    path: Path
    size_bytes: int
    rows: int
    by_status: tuple[tuple[str, int], ...]
    """``(status, rows)``, most frequent first."""
    thumbnails: int
    """Photos embedded as thumbnails."""
    placeholders: int
    """Sampled photos shown as a placeholder (unreadable, remote, outside the root, over the size budget, or
    left out on request)."""


@dataclass(frozen=True, slots=True)
class ReasonCount:
    """How many rows ended with ``status`` for ``reason``."""

    status: str
    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class SampleRow:
    """One sampled row, with the columns the page shows (texts as in the results file, unescaped)."""

    key: str
    path: str
    status: str
    reason: str
    detail: str
    action: str
    width: int | None
    height: int | None
    bytes: int | None


@dataclass(frozen=True, slots=True)
class ChangedSample:
    """The sample of photos the policy changed in one way (``kind``: reoriented, resized or converted)."""

    kind: str
    count: int
    rows: tuple[SampleRow, ...]


@dataclass(frozen=True, slots=True)
class Series:
    """Rows finished per time bucket: ``counts[i]`` rows in ``[start + i*width, start + (i+1)*width)``."""

    label: str
    start: float
    """Epoch seconds (UTC) of the first bucket."""
    width: float
    """Bucket width in seconds."""
    counts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RunStats:
    """One run of the results (rows whose ``run_id`` names it): its rows, when it ran, and its timelines."""

    run_id: str | None
    """``None`` for rows without a run id (results written before runs had ids)."""
    rows: int
    """Rows this run changed last (uploaded, attached, rejected, failed, ... by it)."""
    start: float | None
    """Epoch seconds (UTC): the start in the run id, else its first stamp; ``None`` when unknown."""
    end: float | None
    """Epoch seconds (UTC) of its last upload or attach; ``None`` when it stamped nothing."""
    uploads: Series | None
    attaches: Series | None

    @property
    def seconds(self) -> float | None:
        """From its start to its last upload or attach; ``None`` when either is unknown."""
        if self.start is None or self.end is None:
            return None
        return max(self.end - self.start, 0.0)


@dataclass(frozen=True, slots=True)
class DryRunEstimate:
    """How long the real run will take at the caps, from a dry run's rows (each cap binds on its own; the
    slowest decides)."""

    to_upload: int
    rejected: int
    total: int
    presign_s: float | None
    status_s: float | None
    """Presign pace under the status window (``status_per_min`` calls in any 60 s, used whole): the first
    window's calls go at the presign cap, each further window starts 60 s after the one before."""
    attach_s: float | None
    attach_calls: int
    persons: int
    persons_exact: bool
    """False when there were more distinct persons than the report counts one by one (a lower bound)."""

    @property
    def seconds(self) -> float | None:
        """The estimate: the slowest cap's time, ``None`` when every cap is unlimited."""
        times = [t for t in (self.presign_s, self.status_s, self.attach_s) if t is not None]
        return max(times) if times else None


@dataclass(frozen=True, slots=True)
class PersonsSummary:
    """Attachments to persons (present only when the results have ``person_id`` and ``attached_at``)."""

    attached: int
    persons: int
    by_id: int
    """Persons the manifest named by id: existing persons that were extended."""
    by_name: int
    """Persons reached by name: created by the run, or existing ones found by name."""
    exact: bool
    """False when there were more persons than the report counts one by one (counts are lower bounds)."""
    histogram: tuple[tuple[str, int], ...]
    """``(thumbnails per person, persons)`` buckets."""
    top: tuple[tuple[str, str, int], ...]
    """The persons with the most thumbnails: ``(person_id, name or "", thumbnails)``."""


@dataclass(frozen=True, slots=True)
class JournalInfo:
    """What the run's journal adds: its workspace, rows by journal state, keys recorded as possible orphans."""

    path: str
    workspace: str | None
    created_at: str | None
    states: tuple[tuple[str, int], ...]
    orphans: int
    problem: str | None = None
    """Why the journal could not be read (the other fields are then empty)."""


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything one pass over a results file found; the page is rendered from this alone."""

    name: str
    rows: int
    by_status: tuple[tuple[str, int], ...]
    reasons: tuple[ReasonCount, ...]
    """The ``TOP_REASONS`` reasons with the most rows, most first."""
    reasons_exact: bool
    """False when the file held more distinct reasons than the report counts one by one: ``other_reasons``
    is then a lower bound (``other_reason_rows`` stays exact)."""
    samples: tuple[tuple[str, int, tuple[SampleRow, ...]], ...]
    """Per reason: ``(reason, rows, sampled rows)``, most frequent reason first."""
    changed: tuple[ChangedSample, ...]
    runs: tuple[RunStats, ...]
    """The runs the rows were last changed by, oldest first (at most ``runs.MAX_RUNS``)."""
    dry_run: DryRunEstimate | None
    persons: PersonsSummary | None
    other_reasons: int = 0
    """Distinct (status, reason) pairs folded into one line (not among ``reasons``)."""
    other_reason_rows: int = 0
    """Rows with a reason that is not among ``reasons``."""
    named_by: tuple[str, ...] = ()
    """The columns a row is known by: the id column (when the file has one) and the path column."""
    journal: JournalInfo | None = None
    this_run: tuple[tuple[str, int], ...] = ()
    """``(this_run word, rows)``, most first: what the latest run did (empty when the file has no such column)."""
    runs_not_listed: int = 0
    """Runs past ``runs.MAX_RUNS``: their rows are in the totals, not in ``runs``."""
