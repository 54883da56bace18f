"""One pass over a results file: totals, per-reason samples, changed-photo samples, throughput, persons,
and the dry-run estimate, all in memory bounded by the number of distinct values tracked (not by rows)."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.report.reading import ColumnNames, ResultsReader
from pipeline.report.records import (
    ChangedSample,
    DryRunEstimate,
    PersonsSummary,
    ReasonCount,
    ReportCaps,
    ReportData,
    SampleRow,
)
from pipeline.report.runs import RunTracker
from pipeline.report.sampling import BottomK, BoundedCounter

__all__ = ["CHANGE_KINDS", "MAX_REASONS", "TOP_REASONS", "aggregate"]

CHANGE_KINDS = ("reoriented", "resized", "converted")
MAX_REASONS = 64
"""Distinct reasons given their own contact sheet; rows of further reasons share one "other reasons" sheet."""
TOP_REASONS = 20
"""Reasons listed one by one in the totals (most rows first); the rest are folded into one "N other reasons" line."""
_REASON_COUNTS = 10_000  # distinct (status, reason) pairs counted one by one; rows of later ones are "other"
OTHER_REASONS = "(other reasons)"
NO_REASON = "(no reason)"
_MAX_PERSONS = 200_000  # a set of ~200k ids is ~30 MB: enough for real archives, bounded for hostile files
_PER_CALL = 100  # thumbnails one create or set-thumbnail call carries at most (API.md, section 3)
_TEXT = 400  # characters of a key or detail kept for the page
_PATH_MAX = 4096  # a path is kept whole (it is opened for the thumbnail) up to the OS's own limit


def _clip(value: object, limit: int = _TEXT) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int) else None


class _Pass:
    """The running state of one pass (what ``aggregate`` folds every batch into)."""

    def __init__(self, reader: ResultsReader, names: ColumnNames, per_section: int) -> None:
        self.reader, self.names, self.per_section = reader, names, per_section
        self.rows = 0
        self.status = BoundedCounter(MAX_REASONS)
        self.reasons = BoundedCounter(_REASON_COUNTS)
        self.samples: dict[str, BottomK[SampleRow]] = {}
        self.changed = {kind: BottomK[SampleRow](per_section, seed=11 + i) for i, kind in enumerate(CHANGE_KINDS)}
        self.runs = RunTracker()
        self.this_run = BoundedCounter(64)
        self.names_of: dict[str, str] = {}  # person_id -> the first name seen for it (bounded like the persons)
        self.skipped = self.to_upload = self.rejected = 0
        self.plan_persons = BoundedCounter(_MAX_PERSONS)
        self.persons = BoundedCounter(_MAX_PERSONS)
        self.persons_by_id = BoundedCounter(_MAX_PERSONS)
        self.attached = 0

    def sample(self, row: dict[str, object]) -> SampleRow:
        names = self.names
        path = row.get(names.path)
        key = row.get(names.id) if row.get(names.id) is not None else path
        return SampleRow(key=_clip(key), path=_clip(path, _PATH_MAX), status=_clip(row.get("status")),
                         reason=_clip(row.get("reason")), detail=_clip(row.get("detail")),
                         action=_clip(row.get("action")), width=_int(row.get("width")),
                         height=_int(row.get("height")), bytes=_int(row.get("bytes")))

    def fold(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        status = pc.fill_null(batch.column("status"), "(none)")
        self.status.add_counts(status)
        self.rejected += pc.sum(pc.equal(status, "rejected").cast(pa.int64())).as_py() or 0
        if self.reader.has("reason"):
            shown = pc.utf8_slice_codeunits(batch.column("reason"), 0, _TEXT)  # as the page shows it
            self.reasons.add_counts(pc.binary_join_element_wise(status, shown, "\x1f"))
        self._fold_samples(batch, status)
        self.runs.fold(batch)
        if self.reader.has("this_run"):
            self.this_run.add_counts(batch.column("this_run"))
        self._fold_dry_run(batch, status)
        if self.reader.has("person_id") and self.reader.has("attached_at"):
            self._fold_persons(batch)

    def _fold_samples(self, batch: pa.RecordBatch, status: pa.Array) -> None:
        bad = pc.is_in(status, pa.array(["rejected", "failed"]))
        failed = batch.filter(bad)
        if failed.num_rows:
            reason = (pc.fill_null(failed.column("reason"), NO_REASON) if self.reader.has("reason")
                      else pa.array([NO_REASON] * failed.num_rows))
            self._offer_by_reason(failed, reason)
        if not self.reader.has("action"):
            return
        good = batch.filter(pc.and_kleene(pc.invert(bad), pc.is_valid(batch.column("action"))))
        for kind, sampler in self.changed.items():
            sampler.offer(good.filter(pc.match_substring(good.column("action"), kind)), self.sample)

    def _sampler(self, reason: str) -> BottomK[SampleRow]:
        """The sample a reason's rows go to: its own for the first ``MAX_REASONS`` reasons, then the shared one."""
        group = reason if reason in self.samples or len(self.samples) < MAX_REASONS else OTHER_REASONS
        sampler = self.samples.get(group)
        if sampler is None:
            sampler = self.samples[group] = BottomK[SampleRow](self.per_section, len(self.samples) + 1)
        return sampler

    def _offer_by_reason(self, rows: pa.RecordBatch, reason: pa.Array) -> None:
        """Offer each row to its reason's sample, grouping the rows once: the reasons are dictionary-encoded,
        each distinct reason mapped to its sample (a dict look-up per distinct reason, not a pass over the
        rows per reason), the rows sorted by sample once and each sample offered one contiguous slice. A
        batch of 65,536 distinct reasons costs the same few passes as one of a single reason."""
        encoded = pc.dictionary_encode(reason)
        samplers: list[BottomK[SampleRow]] = []
        slot: dict[int, int] = {}  # id(sampler) -> its position in ``samplers``
        of_value: list[int] = []
        for value in encoded.dictionary.to_pylist():
            sampler = self._sampler(str(value))
            position = slot.setdefault(id(sampler), len(samplers))
            if position == len(samplers):
                samplers.append(sampler)
            of_value.append(position)
        groups = pa.array(of_value, pa.int32()).take(encoded.indices)
        if len(samplers) == 1:
            samplers[0].offer(rows, self.sample)
            return
        order = pc.sort_indices(groups)  # stable: rows keep file order within a sample
        ordered = rows.take(order)
        sizes = [0] * len(samplers)
        counted = pc.value_counts(groups)
        for position, count in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(),
                                   strict=True):
            sizes[position] = count
        start = 0
        for sampler, size in zip(samplers, sizes, strict=True):
            sampler.offer(ordered.slice(start, size), self.sample)
            start += size

    def _fold_dry_run(self, batch: pa.RecordBatch, status: pa.Array) -> None:
        skipped = batch.filter(pc.equal(status, "skipped"))
        if skipped.num_rows == 0:
            return
        self.skipped += skipped.num_rows
        if self.reader.has("duplicate_of"):  # a duplicate rides on its first copy's upload
            skipped = skipped.filter(pc.is_null(skipped.column("duplicate_of")))
        self.to_upload += skipped.num_rows
        # A manifest's person_id column shows as input_person_id in older results; newer ones fold it into
        # person_id, which in a dry run (nothing attached) holds exactly the input ids.
        ids = "input_person_id" if self.reader.has("input_person_id") else "person_id"
        for column, tag in ((self.names.person, "name:"), (ids, "id:")):
            if self.reader.has(column):
                values = skipped.column(column).drop_null()
                self.plan_persons.add_counts(pc.binary_join_element_wise(tag, values, ""))

    def _fold_persons(self, batch: pa.RecordBatch) -> None:
        attached = batch.filter(pc.is_valid(batch.column("attached_at")))
        self.attached += attached.num_rows
        self.persons.add_counts(attached.column("person_id"))
        if self.reader.has(self.names.person) and len(self.names_of) < _MAX_PERSONS:
            named = attached.filter(pc.is_valid(attached.column(self.names.person)))
            known = pa.array(list(self.names_of), pa.string())
            new = named.filter(pc.invert(pc.is_in(named.column("person_id"), known)))
            for pid, name in zip(new.column("person_id").to_pylist(), new.column(self.names.person).to_pylist(),
                                 strict=True):
                if pid is not None and len(self.names_of) < _MAX_PERSONS:
                    self.names_of.setdefault(pid, _clip(name))
        if self.reader.has("input_person_id"):
            named = attached.filter(pc.is_valid(attached.column("input_person_id")))
            self.persons_by_id.add_counts(named.column("person_id"))
        elif self.reader.has(self.names.person):  # input ids folded into person_id: rows without a name
            named = attached.filter(pc.is_null(attached.column(self.names.person)))
            self.persons_by_id.add_counts(named.column("person_id"))

    def result(self, name: str, caps: ReportCaps) -> ReportData:
        ranked = self.reasons.most_common()
        reasons = []
        for joined, count in ranked[:TOP_REASONS]:
            status, _, reason = joined.partition("\x1f")
            reasons.append(ReasonCount(status, reason, count))
        folded = ranked[TOP_REASONS:]
        samples = sorted(((reason, s.seen, tuple(s.items())) for reason, s in self.samples.items()),
                         key=lambda entry: (entry[0] == OTHER_REASONS, -entry[1], entry[0]))
        changed = tuple(ChangedSample(kind, s.seen, tuple(s.items())) for kind, s in self.changed.items() if s.seen)
        runs, not_listed = self.runs.result()
        return ReportData(
            name=name, rows=self.rows, by_status=tuple(self.status.most_common()), reasons=tuple(reasons),
            reasons_exact=self.reasons.exact, other_reasons=len(folded),
            other_reason_rows=sum(count for _, count in folded) + self.reasons.overflow, samples=tuple(samples),
            changed=changed, runs=runs, runs_not_listed=not_listed, this_run=tuple(self.this_run.most_common()),
            dry_run=self._estimate(caps) if self.skipped else None, persons=self._persons(),
            named_by=tuple(c for c in (self.names.id, self.names.path) if self.reader.has(c)),
        )

    def _estimate(self, caps: ReportCaps) -> DryRunEstimate:
        n = self.to_upload
        calls = sum(math.ceil(count / _PER_CALL) for count in self.plan_persons.counts.values())
        calls += math.ceil(self.plan_persons.overflow / _PER_CALL)  # untracked persons: at least this many

        def at(count: int, per_s: float) -> float | None:
            return count / per_s if per_s > 0 else None

        return DryRunEstimate(
            to_upload=n, rejected=self.rejected, total=self.rows, presign_s=at(n, caps.presign_per_s),
            status_s=_windowed(n, caps) if caps.status_checks else None,
            attach_s=at(calls, caps.attach_per_s) if calls else None, attach_calls=calls,
            persons=len(self.plan_persons.counts), persons_exact=self.plan_persons.exact,
        )

    def _persons(self) -> PersonsSummary | None:
        # Every results file has the attach columns: the section is for runs that attached something.
        if not (self.reader.has("person_id") and self.reader.has("attached_at")) or not self.attached:
            return None
        buckets = (("1", 1, 1), ("2-5", 2, 5), ("6-20", 6, 20), ("21-50", 21, 50), ("51-100", 51, 100),
                   ("over 100", 101, math.inf))
        histogram = tuple((label, sum(1 for c in self.persons.counts.values() if low <= c <= high))
                          for label, low, high in buckets)
        by_id = len(self.persons_by_id.counts)
        return PersonsSummary(
            attached=self.attached, persons=len(self.persons.counts), by_id=by_id,
            by_name=len(self.persons.counts) - by_id, exact=self.persons.exact and self.persons_by_id.exact,
            histogram=histogram,
            top=tuple((pid, self.names_of.get(pid, ""), n) for pid, n in self.persons.most_common(self.per_section)),
        )


def _windowed(calls: int, caps: ReportCaps) -> float | None:
    """Seconds ``calls`` status calls take at the presign cap under the status window (``status_per_min`` in
    any 60 s, whole-window: README "Rates"): each window's calls go at the presign pace, the next window opens
    60 s after the one before. Up to one window's worth (1,000 at the defaults), the presign cap alone decides."""
    per_window = math.floor(caps.status_per_min)
    if per_window <= 0:
        return None
    pace = 1 / caps.presign_per_s if caps.presign_per_s > 0 else 0.0
    if calls == 0:
        return 0.0
    if per_window * pace >= 60:  # the presign cap is slower than the window: it alone decides
        return calls * pace
    windows = (calls - 1) // per_window
    return windows * 60 + (calls - windows * per_window) * pace


def aggregate(path: Path, *, names: ColumnNames, per_section: int, caps: ReportCaps) -> ReportData:
    """Read ``path`` once, in batches, and return everything the page shows (``ConfigError`` if unreadable).

    Samples are uniform over the rows of their reason (or change kind) and the same for the same file.
    """
    reader = ResultsReader(path, names)
    state = _Pass(reader, names, per_section)
    for batch in reader.batches():
        state.fold(batch)
    return state.result(Path(path).name, caps)
