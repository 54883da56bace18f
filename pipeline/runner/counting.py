"""What a run's summary counts, so that it promises no more than the run does (pure functions over the
stages' counters and the journal).

The plan a run shows ("new rows to upload", "thumbnails to attach", ...) counts only rows that passed prepare:
a dry run's counts are what the real run then uploads and attaches, not every row it looked at.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone

from pipeline.attach import AttachRow
from pipeline.config import Settings
from pipeline.journal import Journal
from pipeline.models import Status
from pipeline.runner.attach_prep import Collected
from pipeline.runner.prepare_stage import KEY_LIFETIME
from pipeline.runner.stages import PlanStage

__all__ = ["honest_plan", "not_in_manifest", "unattached_warning", "would_attach"]

_ROUTED = ("attach", "person_full", "person_not_found", "invalid_person")
"""The attach route's own counts (rows it deals with without an upload)."""


def honest_plan(plan: PlanStage | None, routed: Mapping[str, int], this_run: Mapping[str, int]) -> dict[str, int]:
    """``Summary.planned``: rows left alone (``finished``, with those whose stamp moved but whose content did not),
    rows that passed prepare by why they were planned (``new``, ``changed``, ...: uploaded, or in a dry run to
    upload), rows rejected by this run (never uploaded), and the attach route's own counts."""
    planned: dict[str, int] = {}
    if plan is not None:
        finished = plan.planned.get("finished", 0) + this_run.get("unchanged", 0)
        if finished:
            planned["finished"] = finished
        planned.update({why: n for why, n in plan.passed.items() if n})
    if this_run.get("rejected"):
        planned["rejected"] = this_run["rejected"]
    planned.update({k: n for k, n in routed.items() if k in _ROUTED and n})
    return planned


def not_in_manifest(journal: Journal, in_journal: Counter[str]) -> dict[str, int]:
    """Rows the journal holds that this input does not name, per status (``in_journal``: the input's rows the
    journal holds, per status, as the results found them; empty when the results were not assembled). A
    journal holding just the input's rows is not read row by row again (the nightly no-op's case)."""
    if sum(in_journal.values()) == journal.size():
        return {}
    journal_counts = journal.counts()
    left = {status: n - in_journal.get(status, 0) for status, n in journal_counts.items()}
    return {status: n for status, n in left.items() if n > 0}


def unattached_warning(upload_times: list[str], settings: Settings) -> tuple[str, ...]:
    """The summary's sentence about rows uploaded without a person under ``--attach``: how many, and when the
    first of their keys expires (UTC)."""
    if not settings.attach or not upload_times:
        return ()
    first = (datetime.fromisoformat(min(upload_times)) + KEY_LIFETIME).astimezone(timezone.utc)
    return (f"{len(upload_times):,} row(s) have no person: uploaded but not attached, their keys expire 24 h after "
            f"upload (the first at {first:%Y-%m-%d %H:%M} UTC); give them a person (or person_id) and run again "
            "before then (the results' detail says so per row)",)


def would_attach(rows: list[AttachRow], journal: Journal) -> list[AttachRow]:
    """The rows of a dry run's attach plan: those that passed prepare (``skipped``: a real run uploads them),
    hold an uploaded key to attach, or are attached already (they count on their person); rows rejected,
    failed or not reached are left out, so they cause no look-up and no count."""
    entries = journal.lookup([r.row_key for r in rows])
    kept: list[AttachRow] = []
    for row in rows:
        entry = entries.get(row.row_key)
        if entry is None:
            continue
        if entry.status is Status.ATTACHED:
            kept.append(replace(row, attached=True))
        elif entry.status is Status.SKIPPED:
            kept.append(replace(row, attached=False))  # a changed source of an attached row: attached again
        elif entry.status is Status.UPLOADED or (entry.thumbnail_key and entry.status in (Status.REJECTED,
                                                                                           Status.FAILED)):
            kept.append(row)
    if isinstance(rows, Collected):  # the rows refused before any look-up (invalid_person) stay counted
        return Collected(kept, rows.refusals, rows.rejected, rows.full)
    return kept
