"""The results' columns: the one field list the journal's columns and the results' columns are derived from
(``RESULT_FIELDS``), and what each value of the ``this_run`` column means (``THIS_RUN``). A leaf module."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RESULT_FIELDS", "THIS_RUN", "ResultField"]


THIS_RUN: dict[str, str] = {
    "uploaded": "uploaded by this run",
    "attached": "uploaded (or held) and attached to its person by this run",
    "reattached": "attached to its person again: its source or its person changed (the earlier thumbnail stays)",
    "reused": "given the key of a byte-identical row (--dedupe): not uploaded again",
    "rejected": "rejected by this run (its first look, or its content changed)",
    "rechecked": "looked at again and found as it was (a fixable rejection still there, or a source whose stamp "
                 "moved but whose content is the same)",
    "failed": "failed in this run (a re-run retries it)",
    "skipped": "a dry run: would be uploaded",
    "reopened": "its source changed: reopened for a new upload that has not finished",
    "presigned": "presigned, its upload not finished",
    "unchanged": "left alone: finished by an earlier run and unchanged",
    "interrupted": "not finished: the run stopped first",
    "not_reached": "not reached: past --limit, or the run stopped on a fatal answer",
}
"""The values of the results' ``this_run`` column and what each means."""


@dataclass(frozen=True, slots=True)
class ResultField:
    """One column shared by the journal and the results: its name (a ``RowResult`` attribute) and its kind."""

    name: str
    kind: str
    """``text``, ``int32``, ``int64`` or ``timestamp`` (UTC; ISO-8601 text in the journal and in CSV)."""
    in_results: bool = True
    """False for journal-only bookkeeping (``source_stamp``)."""


RESULT_FIELDS: tuple[ResultField, ...] = (
    ResultField("status", "text"),
    ResultField("thumbnail_key", "text"),
    ResultField("reason", "text"),
    ResultField("detail", "text"),
    ResultField("action", "text"),
    ResultField("width", "int32"),
    ResultField("height", "int32"),
    ResultField("bytes", "int64"),
    ResultField("source_sha256", "text"),
    ResultField("attempts", "int32"),
    ResultField("uploaded_at", "timestamp"),
    ResultField("duplicate_of", "text"),
    ResultField("source_stamp", "text", in_results=False),
    ResultField("person_id", "text"),
    ResultField("attached_at", "timestamp"),
    ResultField("run_id", "text"),
    ResultField("this_run", "text"),
    ResultField("source_path", "text", in_results=False),
)
"""The one field list the journal's columns and the results' columns are derived from, in results order."""


