"""``AttachRoute``: where the plan and upload stages hand rows with a person (``--attach``).

The plan stage asks ``route`` first for every row: a row refused already is recorded at once
(``invalid_person`` and ``person_full`` rejected, ``person_not_found`` failed; a ``person_full`` row an
earlier run uploaded is rejected too, keeping its key, with a detail saying so); a row an earlier run
uploaded and did not attach goes straight to the attach stage (no upload) unless its key is older than
``REUPLOAD_AFTER`` or the service said it expired, when it is uploaded again (its old key an orphan). The
upload stage awaits ``admit`` before each row's presign (the row's person is looked up then, if it was not
yet: a key that cannot be attached is never uploaded) and hands each freshly uploaded row on with
``uploaded``.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta

from pipeline import clock
from pipeline.attach.planner import RowRefusal
from pipeline.errors import ApiError, FatalApiError, ServiceUnavailableError
from pipeline.journal import Entry
from pipeline.models import Row, RowResult, Status
from pipeline.runner.attach_book import AttachBook
from pipeline.runner.plan import Why
from pipeline.runner.recorder import Recorder
from pipeline.runner.records import Attachable, Pipe

__all__ = ["KEY_GONE", "REUPLOAD_AFTER", "AttachRoute", "gone_keys"]

REUPLOAD_AFTER = timedelta(hours=23)
"""An unattached key older than this is not attached but replaced: it expires 24 h after its upload."""
KEY_GONE = "the service no longer knows this key (expired or unknown)"
"""How the detail of an ``attach_failed`` row whose key the service refused as expired/unknown starts: the
next run uploads it again instead of trying the same key."""


def gone_keys(detail: str, keys: set[str]) -> set[str]:
    """Those of a refused create/add call's ``keys`` its answer ``detail`` says the service no longer knows
    (expired, or not an uploaded key of the workspace): the ones it names, or all of them when it names none."""
    text = detail.lower()
    unknown = "thumbnailkey" in text and any(w in text for w in ("not an uploaded", "unknown", "not found"))
    if "expired" not in text and not unknown:
        return set()
    return {k for k in keys if k in detail} or set(keys)


def _too_old(uploaded_at: str | None, now: datetime) -> bool:
    if not uploaded_at:
        return False
    try:
        at = clock.read_time(uploaded_at)  # ``Z`` or ``+00:00``: old journals hold both
    except ValueError:
        return True  # an unreadable time cannot prove the key is fresh
    return now - at > REUPLOAD_AFTER


def _holds_unattached(entry: Entry | None) -> bool:
    """Whether the row holds an uploaded key that is not attached: ``uploaded``, ``failed``
    (``attach_failed``) or ``rejected`` (``person_full`` after its upload)."""
    if entry is None or not entry.thumbnail_key:
        return False
    return (entry.status is Status.UPLOADED or (entry.status is Status.FAILED and entry.reason == "attach_failed")
            or (entry.status is Status.REJECTED and entry.reason == "person_full"))


def _status(refusal: RowRefusal) -> Status:
    return Status.FAILED if refusal.reason == "person_not_found" else Status.REJECTED


class Routed(enum.Enum):
    """What ``AttachRoute.route`` did with a row the plan looked at."""

    DEALT = "dealt"
    """Dealt with here: refused, or its uploaded key handed to the attach stage."""
    UPLOAD_AGAIN = "upload_again"
    """Its key is too old or gone: the plan uploads it again (``Why.EXPIRED``)."""
    PLAN = "plan"
    """Not the route's business: the ordinary plan decides."""


class AttachRoute:
    """Routes rows with a person between the plan, upload and attach stages; ``out`` feeds the attach stage."""

    def __init__(self, book: AttachBook, recorder: Recorder, out: Pipe[Attachable]) -> None:
        self.book, self.recorder, self.out = book, recorder, out
        self.planned: Counter[str] = Counter()
        self._held: dict[str, Row] = {}
        book.held_refused = self._held_refused

    async def route(self, row: Row, entry: Entry | None, stamp: str | None) -> Routed:
        """What becomes of a row the plan looked at (``Routed``)."""
        if row.key in self.book.kept_full:
            # Rejected person_full by an earlier run, and its person has nothing else to attach: looking the
            # person up only to refuse the row again would be this run's only person call.
            self.recorder.progress.update(Status.REJECTED.value)
            return Routed.DEALT
        refusal = self.book.refusals.get(row.key)
        holds = _holds_unattached(entry)
        if refusal is not None and holds and refusal.reason == "person_full":
            self._reject_held(row, refusal)
            return Routed.DEALT
        if refusal is not None and (entry is None or entry.status not in (Status.UPLOADED, Status.ATTACHED)):
            self.planned[refusal.reason] += 1
            self.recorder.record_later(RowResult(row.index, row.key, _status(refusal), reason=refusal.reason,
                                                 detail=refusal.detail), row.path)
            return Routed.DEALT
        if not holds or entry is None or entry.thumbnail_key is None or not self.book.wants(row.key):
            return Routed.PLAN
        if stamp is not None and entry.source_stamp is not None and stamp != entry.source_stamp:
            return Routed.PLAN  # the source may have changed: the ordinary plan hashes it
        if _too_old(entry.uploaded_at, clock.utc_now()) or self._gone(row, entry):
            # Uploaded again: the image stage reopens an uploaded row (its old key an orphan) before the upload.
            self.planned[Why.EXPIRED.value] += 1
            return Routed.UPLOAD_AGAIN
        self.planned["attach"] += 1
        self._held[row.key] = row
        await self.out.put(Attachable(row.key, row.path, entry.thumbnail_key))
        return Routed.DEALT

    def _gone(self, row: Row, entry: Entry) -> bool:
        """Whether an earlier attach of the row's key failed because the service no longer knows the key."""
        if entry.status is not Status.FAILED:
            return False
        held = self.recorder.journal.records([row.key]).get(row.key)
        return held is not None and (held.detail or "").startswith(KEY_GONE)

    def _reject_held(self, row: Row, refusal: RowRefusal) -> None:
        """Uploaded by an earlier run (without --attach, or before the person filled up): it keeps its key,
        which cannot be attached; say so instead of leaving it "uploaded" as if nothing were missing."""
        held = self.recorder.journal.records([row.key])[row.key]
        self.planned[refusal.reason] += 1
        self.recorder.record(replace(
            held, index=row.index, status=Status.REJECTED, reason=refusal.reason,
            detail=f"uploaded by an earlier run and not attached (the key expires 24 h after its upload): "
                   f"{refusal.detail}"), row.path)

    def _held_refused(self, row_key: str, refusal: RowRefusal) -> None:
        """A held key reached the attach stage before its person's look-up, which refused it."""
        row = self._held.pop(row_key, None)
        if row is not None:
            self.planned["attach"] -= 1
            self._reject_held(row, refusal)

    async def admit(self, row: Row) -> RowRefusal | None:
        """Just before the row's presign: ``None`` to upload it, else its refusal, recorded here (the key
        could not be attached: ``person_full``, ``person_not_found``, ``invalid_person``). Awaits the row's
        person's look-up (started here when it is the first the person needs). Raises ``FatalApiError`` when
        the look-up cannot be made (``ServiceUnavailableError`` when the persons API kept failing)."""
        key = row.key
        refusal = self.book.refusals.get(key)
        if refusal is None:
            target = self.book.target_by_key.get(key) or self.book.held.get(key)
            if target is None:
                return None
            if not self.book.known(target):
                assert self.book.lookups is not None
                try:
                    await self.book.lookups.want(target)
                except FatalApiError:
                    raise
                except ApiError as exc:
                    raise ServiceUnavailableError(
                        f"The persons API kept failing while {target} was looked up ({exc}); rows of persons not "
                        "looked up were not uploaded: run the same command again later.") from None
            refusal = self.book.refusals.get(key)
            if refusal is None and key in self.book.held:
                refusal = self.book.reopen(key, target)
            if refusal is None:
                return None
        self.planned[refusal.reason] += 1
        self.recorder.record(RowResult(row.index, key, _status(refusal), reason=refusal.reason,
                                       detail=refusal.detail), row.path)
        return refusal

    async def uploaded(self, row: Row, thumbnail_key: str, *, replaces: str | None = None,
                       replaced_person: str | None = None) -> None:
        """A row just uploaded: to the attach stage when it has a person (``replaces``/``replaced_person``:
        the key and person the journal held it attached with before its source or person changed)."""
        if row.key in self.book.held and row.key not in self.book.reopened:
            self.book.reopen(row.key, self.book.held[row.key])  # not admitted first: attach it all the same
        if self.book.wants(row.key):
            await self.out.put(Attachable(row.key, row.path, thumbnail_key, fresh=True, replaces=replaces,
                                          replaced_person=replaced_person))
