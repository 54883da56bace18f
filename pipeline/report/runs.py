"""The runs a results file spans, told apart by its ``run_id`` column (the run that last changed each row).

Each run gets its own timelines of ``uploaded_at`` and ``attached_at``, so runs of several nights are drawn
apart, never as one axis with the nights between them drawn as zero. A stamp older than its run's start (the
start is in the run id: ``20261204T231309Z-a1b2c3``) is an earlier run's upload of a row this run attached, and
is left out of this run's timeline. Memory is bounded: ``MAX_RUNS`` runs get timelines, further runs are
counted only; each timeline holds at most a few thousand buckets.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.report.records import RunStats, Series
from pipeline.report.sampling import BoundedCounter

__all__ = ["MAX_RUNS", "RunTracker", "Timeline", "run_start"]

MAX_RUNS = 64
"""Runs given their own timelines; rows of further runs are counted in the totals only."""
_MAX_BUCKETS = 20_000  # per-second buckets of one timeline before they are merged into coarser ones
_MAX_SERIES = 4_000  # buckets handed to the chart, which draws at most a few hundred
_US = pa.timestamp("us", tz="UTC")


def run_start(run_id: str | None) -> float | None:
    """The UTC start (epoch seconds) a run id begins with, ``None`` when it does not (a file from elsewhere)."""
    if not run_id:
        return None
    try:
        return datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


class Timeline:
    """Rows per time bucket; buckets start at one second and double in width whenever there are too many,
    so a run spread over months stays a few thousand numbers. Also the exact first and last stamp."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.width = 1
        self.counts: dict[int, int] = {}
        self.first: int | None = None
        self.last: int | None = None

    def add(self, stamps: pa.Array) -> None:
        """Count the non-null stamps (UTC microseconds)."""
        stamps = stamps.drop_null()
        if len(stamps) == 0:
            return
        micros = stamps.cast(pa.int64())
        low, high = pc.min_max(micros).values()
        self.first = low.as_py() if self.first is None else min(self.first, low.as_py())
        self.last = high.as_py() if self.last is None else max(self.last, high.as_py())
        seconds = pc.divide(micros, 1_000_000 * self.width)
        counted = pc.value_counts(seconds)
        for bucket, count in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True):
            self.counts[bucket] = self.counts.get(bucket, 0) + count
        while len(self.counts) > _MAX_BUCKETS:
            merged: dict[int, int] = {}
            for bucket, count in self.counts.items():
                merged[bucket // 2] = merged.get(bucket // 2, 0) + count
            self.counts, self.width = merged, self.width * 2

    def series(self) -> Series | None:
        """The counts as consecutive buckets, at most ``_MAX_SERIES`` of them (a gap of a year between two
        rows must not become 31 million empty seconds)."""
        if not self.counts:
            return None
        first, last = min(self.counts), max(self.counts)
        factor = math.ceil((last - first + 1) / _MAX_SERIES)
        merged = [0] * ((last - first) // factor + 1)
        for bucket, count in self.counts.items():
            merged[(bucket - first) // factor] += count
        return Series(self.label, float(first * self.width), float(self.width * factor), tuple(merged))


class RunTracker:
    """Rows per run and each run's upload and attach timelines, folded batch by batch."""

    def __init__(self) -> None:
        self.rows = BoundedCounter(10_000)  # a run id per row at worst: bounded, the overflow counted
        self._lines: dict[str, tuple[Timeline, Timeline]] = {}

    def fold(self, batch: pa.RecordBatch) -> None:
        """Count ``batch``'s rows per run and add its stamps to their run's timelines."""
        names = batch.schema.names
        runs = (pc.fill_null(batch.column("run_id"), "") if "run_id" in names
                else pa.array([""] * batch.num_rows, pa.string()))
        self.rows.add_counts(runs)
        timed = [c for c in ("uploaded_at", "attached_at") if c in names]
        if not timed:
            return
        encoded = pc.dictionary_encode(runs)
        for i, run in enumerate(encoded.dictionary.to_pylist()):
            lines = self._lines.get(run)
            if lines is None:
                if len(self._lines) >= MAX_RUNS:
                    continue
                lines = self._lines[run] = (Timeline("uploaded"), Timeline("attached"))
            part = batch.filter(pc.equal(encoded.indices, i))
            start = run_start(run)
            for column, line in zip(("uploaded_at", "attached_at"), lines, strict=True):
                if column not in timed:
                    continue
                stamps = part.column(column)
                if start is not None:  # an earlier run's upload of a row this run attached
                    stamps = stamps.filter(pc.greater_equal(stamps, pa.scalar(int(start * 1e6), _US)))
                line.add(stamps)

    def result(self) -> tuple[tuple[RunStats, ...], int]:
        """The runs with timelines, by start, and how many further runs were only counted."""
        runs = []
        for run, (uploads, attaches) in self._lines.items():
            firsts = [t.first for t in (uploads, attaches) if t.first is not None]
            lasts = [t.last for t in (uploads, attaches) if t.last is not None]
            start = run_start(run)
            first = min(firsts) / 1e6 if firsts else None
            runs.append(RunStats(run_id=run or None, rows=self.rows.counts.get(run, 0),
                                 start=start if start is not None else first,
                                 end=max(lasts) / 1e6 if lasts else None,
                                 uploads=uploads.series(), attaches=attaches.series()))
        for run, count in self.rows.counts.items():  # runs past MAX_RUNS, or whose rows carry no stamp
            if run not in self._lines and len(runs) < MAX_RUNS:
                runs.append(RunStats(run_id=run or None, rows=count, start=run_start(run), end=None,
                                     uploads=None, attaches=None))
        runs.sort(key=lambda r: (r.start is None, r.start or 0.0, r.run_id or ""))
        return tuple(runs), len(self.rows.counts) + (1 if self.rows.overflow else 0) - len(runs)
