"""What a run does with each row it reads, decided from the journal's entry for the row's key (pure).

Finished rows whose source is unchanged are skipped with no API call and no read of the source: the source's
*stamp* (``size:mtime_ns`` for a local file) is compared with the one journaled when the row finished. A
different stamp costs a hash of the source, not an upload: only a different sha256 is a changed row.
Rejections a user can fix by moving files or flags are always checked again; content rejections when the
content changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from pipeline.journal import Entry
from pipeline.models import Status

__all__ = ["FIXABLE_REASONS", "Decision", "Why", "decide", "stamp_of"]

FIXABLE_REASONS = frozenset({
    "not_found", "unreadable", "outside_root", "missing_path", "invalid_path",
    "access_denied", "fetch_failed", "source_too_large", "unsupported_source", "person_full", "person_not_found",
    "invalid_person",
})
"""Rejections that depend on where files are, on flags or on the network, not on the picture: re-checked on
every run."""


class Why(str, Enum):
    """Why a row is worked on in this run (the keys of ``Summary.planned``, with ``finished``)."""

    NEW = "new"
    CHANGED = "changed"
    """Finished before, and its source stamp differs: hashed first; uploaded again only if its sha256 differs."""
    RECHECK = "recheck"
    RETRY = "retry"
    UNFINISHED = "unfinished"
    EXPIRED = "expired"
    """Uploaded but never attached, and its key is too old to attach (``--attach``): uploaded again."""
    """Journaled but not finished: left in flight by a stopped run, or reopened."""


@dataclass(frozen=True, slots=True)
class Decision:
    """``why`` is ``None`` for a row left alone (finished and unchanged)."""

    why: Why | None
    verify_sha256: str | None = None
    """When set, hash the source first: equal to this means unchanged (keep the row as it is)."""


_SKIP = Decision(None)


def stamp_of(source: Path | str) -> str | None:
    """``size:mtime_ns`` of a local file, or ``None`` when it cannot be stat'ed (missing, no permission)."""
    try:
        st = os.stat(source)  # noqa: PTH116  # str-friendly and cheaper than Path.stat per row
    except (OSError, ValueError):
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


def decide(entry: Entry | None, stamp: str | None, *, retry_failed: bool) -> Decision:
    """The decision for a row whose key has ``entry`` in the journal and whose source has ``stamp`` now
    (``None``: no stamp could be taken, e.g. the file is missing)."""
    if entry is None:
        return Decision(Why.NEW)
    status = entry.status
    if status is Status.ATTACHED:
        return _SKIP  # its key sits on a person: final
    if status is Status.UPLOADED or (status is Status.REJECTED and entry.thumbnail_key):
        # A row rejected after its upload (person_full) holds its key like an uploaded row: never re-sent.
        if stamp is None or stamp == entry.source_stamp:
            return _SKIP  # a source deleted after its upload keeps its key
        return Decision(Why.CHANGED, verify_sha256=entry.source_sha256)
    if status is Status.REJECTED:
        if entry.reason in FIXABLE_REASONS:
            return Decision(Why.RECHECK)
        if stamp is not None and stamp == entry.source_stamp:
            return _SKIP
        return Decision(Why.RECHECK)
    if status is Status.FAILED:
        return Decision(Why.RETRY) if retry_failed else _SKIP
    return Decision(Why.UNFINISHED)  # pending (left in flight, reopened) or skipped (a dry run's copy)
