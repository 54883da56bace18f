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
from pipeline.models import Row, Status
from pipeline.reasons import FIXABLE

__all__ = ["FIXABLE_REASONS", "Decision", "Why", "decide", "source_identity", "source_of", "stamp_of",
           "stamp_text"]

FIXABLE_REASONS: frozenset[str] = FIXABLE
"""Rejections that depend on where files are, on flags or on the network, not on the picture: re-checked on
every run (the registry's ``fixable`` codes, ``pipeline.reasons``)."""


class Why(str, Enum):
    """Why a row is worked on in this run (the keys of ``Summary.planned``, with ``finished``)."""

    NEW = "new"
    CHANGED = "changed"
    """Finished before, and its source stamp differs: hashed first; uploaded again only if its sha256 differs."""
    RECHECK = "recheck"
    RETRY = "retry"
    UNFINISHED = "unfinished"
    """Journaled but not finished: left in flight by a stopped run, or reopened."""
    EXPIRED = "expired"
    """Uploaded but never attached, and its key is too old to attach (``--attach``): uploaded again."""
    PERSON_CHANGED = "person_changed"
    """Attached, and the manifest now names another person (``--attach``): uploaded again and attached to the new
    person; the earlier thumbnail stays with the earlier person."""


@dataclass(frozen=True, slots=True)
class Decision:
    """``why`` is ``None`` for a row left alone (finished and unchanged)."""

    why: Why | None
    verify_sha256: str | None = None
    """When set, hash the source first: equal to this means unchanged (keep the row as it is)."""


_SKIP = Decision(None)


def source_identity(path: str) -> str:
    """A path cell as a source's identity: a URL without its query string or fragment (a presigned source URL
    is signed again every night; the object it names is the same), any other cell as written."""
    if "://" in path[:16]:
        return path.split("?", 1)[0].split("#", 1)[0]
    return path


def source_of(row: Row) -> str:
    """What a row's source is, as the journal remembers it (``source_path``): a local file's resolved path (two
    manifests in two folders may both say ``p1.jpg``), else the cell's ``source_identity``."""
    return row.source if row.source is not None else source_identity(row.path)


def stamp_of(source: Path | str) -> str | None:
    """``size:mtime_ns`` of a local file, or ``None`` when it cannot be stat'ed (missing, no permission)."""
    try:
        st = os.stat(source)  # noqa: PTH116  # str-friendly and cheaper than Path.stat per row
    except (OSError, ValueError):
        return None
    return stamp_text(st)


def stamp_text(st: os.stat_result) -> str:
    """A local file's stamp as the journal keeps it: ``size:mtime_ns``."""
    return f"{st.st_size}:{st.st_mtime_ns}"


def decide(entry: Entry | None, stamp: str | None, *, retry_failed: bool, path: str | None = None,
           attach: bool = False, person_changed: bool = False) -> Decision:
    """The decision for a row whose key has ``entry`` in the journal and whose source has ``stamp`` now
    (``None``: no stamp could be taken, e.g. the file is missing), read from the path cell ``path``.

    A row holding a key is never re-sent while its source is the same: same stamp and same path cell. A moved
    stamp or a key that now names another file costs a hash (``verify_sha256``); only other content is a new
    upload. An attached row is looked at again only with ``attach`` (its new key must reach its person): when
    its source changed, or when its person did (``person_changed``: a new upload for the new person)."""
    if entry is None:
        return Decision(Why.NEW)
    status = entry.status
    holds = status is Status.UPLOADED or (status is Status.REJECTED and bool(entry.thumbnail_key))
    if status is Status.ATTACHED or holds:
        # A row rejected after its upload (person_full) holds its key like an uploaded row: never re-sent.
        return _holding(entry, stamp, path, attach=attach, person_changed=person_changed)
    if status is Status.REJECTED:
        if entry.reason in FIXABLE_REASONS:
            return Decision(Why.RECHECK)
        if stamp is not None and stamp == entry.source_stamp:
            return _SKIP
        return Decision(Why.RECHECK)
    if status is Status.FAILED:
        return Decision(Why.RETRY) if retry_failed else _SKIP
    return Decision(Why.UNFINISHED)  # pending (left in flight, reopened) or skipped (a dry run's copy)


def _holding(entry: Entry, stamp: str | None, path: str | None, *, attach: bool, person_changed: bool) -> Decision:
    """``decide`` for a row that holds a key (uploaded, attached, or rejected after its upload)."""
    attached = entry.status is Status.ATTACHED
    if attached and not attach:
        return _SKIP  # its key sits on a person; without --attach a new key could not replace it there
    if stamp is None:
        return _SKIP  # a source deleted (or unreadable) after its upload keeps its key
    if attached and person_changed:
        return Decision(Why.PERSON_CHANGED)
    moved = path is not None and entry.source_path is not None and path != entry.source_path
    if stamp == entry.source_stamp and not moved:
        return _SKIP
    return Decision(Why.CHANGED, verify_sha256=entry.source_sha256)
