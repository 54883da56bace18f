"""``AttachRoute``: where the plan and upload stages hand rows with a person (``--attach``).

The plan stage asks ``route`` first for every row: a row refused before upload is recorded at once
(``person_full`` rejected, ``person_not_found`` failed; a ``person_full`` row an earlier run uploaded is
rejected too, keeping its key, with a detail saying so); a row an earlier run uploaded and did not attach goes
straight to the attach stage (no upload) unless its key is older than ``REUPLOAD_AFTER``, when it is
uploaded again (its old key an orphan). The upload stage hands each freshly uploaded row on with
``uploaded``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from pipeline.journal import Entry
from pipeline.models import Row, RowResult, Status
from pipeline.runner.attach_prep import AttachBook
from pipeline.runner.plan import Why
from pipeline.runner.recorder import Recorder
from pipeline.runner.records import Attachable, Job, Pipe

__all__ = ["REUPLOAD_AFTER", "AttachRoute"]

REUPLOAD_AFTER = timedelta(hours=23)
"""An unattached key older than this is not attached but replaced: it expires 24 h after its upload."""


def _too_old(uploaded_at: str | None, now: datetime) -> bool:
    if not uploaded_at:
        return False
    try:
        at = datetime.fromisoformat(uploaded_at)
    except ValueError:
        return True  # an unreadable time cannot prove the key is fresh
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return now - at > REUPLOAD_AFTER


def _holds_unattached(entry: Entry | None) -> bool:
    """Whether the row holds an uploaded key that is not attached: ``uploaded``, ``failed``
    (``attach_failed``) or ``rejected`` (``person_full`` after its upload)."""
    if entry is None or not entry.thumbnail_key:
        return False
    return (entry.status is Status.UPLOADED or (entry.status is Status.FAILED and entry.reason == "attach_failed")
            or (entry.status is Status.REJECTED and entry.reason == "person_full"))


class AttachRoute:
    """Routes rows with a person between the plan, upload and attach stages; ``out`` feeds the attach stage."""

    def __init__(self, book: AttachBook, recorder: Recorder, out: Pipe[Attachable]) -> None:
        self.book, self.recorder, self.out = book, recorder, out
        self.planned: Counter[str] = Counter()

    async def route(self, row: Row, entry: Entry | None, stamp: str | None) -> Job | bool:
        """``True`` when the row is dealt with here, a ``Job`` to upload it again (key too old), ``False``
        when the ordinary plan decides."""
        refusal = self.book.refusals.get(row.key)
        holds = _holds_unattached(entry)
        if refusal is not None and holds and refusal.reason == "person_full":
            # Uploaded by an earlier run (without --attach, or before the person filled up): it keeps its key,
            # which cannot be attached; say so instead of leaving it "uploaded" as if nothing were missing.
            assert entry is not None
            held = self.recorder.journal.records([row.key])[row.key]
            self.planned[refusal.reason] += 1
            self.recorder.record_later(replace(
                held, index=row.index, status=Status.REJECTED, reason=refusal.reason,
                detail=f"uploaded by an earlier run and not attached (the key expires 24 h after its upload): "
                       f"{refusal.detail}"), row.path)
            return True
        if refusal is not None and (entry is None or entry.status not in (Status.UPLOADED, Status.ATTACHED)):
            status = Status.REJECTED if refusal.reason == "person_full" else Status.FAILED
            self.planned[refusal.reason] += 1
            self.recorder.record_later(RowResult(row.index, row.key, status, reason=refusal.reason,
                                                 detail=refusal.detail), row.path)
            return True
        if not holds or entry is None or entry.thumbnail_key is None or not self.book.wants(row.key):
            return False
        if stamp is not None and entry.source_stamp is not None and stamp != entry.source_stamp:
            return False  # the source may have changed: the ordinary plan hashes it
        if _too_old(entry.uploaded_at, datetime.now(timezone.utc)):
            # Uploaded again: the image stage reopens an uploaded row (its old key an orphan) before the upload.
            self.planned[Why.EXPIRED.value] += 1
            return Job(row, Why.EXPIRED, stamp)
        self.planned["attach"] += 1
        await self.out.put(Attachable(row.key, row.path, entry.thumbnail_key))
        return True

    async def uploaded(self, row: Row, thumbnail_key: str) -> None:
        """A row just uploaded: to the attach stage when it has a person."""
        if self.book.wants(row.key):
            await self.out.put(Attachable(row.key, row.path, thumbnail_key, fresh=True))
