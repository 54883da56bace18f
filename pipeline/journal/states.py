"""The journal's state machine: which status may follow which, and which keys a transition orphans.

A row with no record is ``None`` (never seen). Keys are the server's ``thumbnailKey``s. An *orphan* is a key
that was presigned (and may exist server-side until it expires) but is not the row's current key; orphans are
derived here and nowhere else, from the row's prior state and the state it moves to.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import JournalStateError
from pipeline.models import Status

__all__ = ["TRANSITIONS", "Prior", "check", "orphans_of", "this_run"]

P, PS, U, A, R, F, S = (Status.PENDING, Status.PRESIGNED, Status.UPLOADED, Status.ATTACHED, Status.REJECTED,
                        Status.FAILED, Status.SKIPPED)
_WORK = frozenset({PS, U, R, F, S})
"""Where a row that needs work may go: presigned before its PUT, or straight to an end (a reused key, a
rejection, a failure, a dry run's skip)."""

TRANSITIONS: dict[Status | None, frozenset[Status]] = {
    None: _WORK,
    P: _WORK,
    PS: frozenset({PS, P, U, F}),
    U: frozenset({U, P, A, F, R}),
    A: frozenset({A, P}),
    R: _WORK | {A, P},
    F: _WORK | {A},
    S: _WORK,
}
"""``from -> allowed targets``. ``presigned -> pending`` is a resumed run redoing a row left in flight;
``uploaded -> pending`` is a row whose source content changed (its old key is kept as an orphan);
``uploaded -> uploaded`` only re-records the same key (e.g. a new source stamp for unchanged content).
``uploaded -> attached`` (same key) is the attach; ``uploaded -> failed`` (same key) an attach that failed,
whose row a re-run attaches (``failed -> attached``, same key) or uploads again when its key is too old.
``uploaded -> rejected`` (same key) is a row an earlier run uploaded that its person has no room for
(``person_full`` with ``--attach``): it keeps its key, unattached; a later run with room attaches it
(``rejected -> attached``, same key); a changed source reopens it (``rejected -> pending``, key an orphan).
An attached row keeps its key while its source and its person stay the same; one whose source content or person
changed goes back to ``pending`` (``attached -> pending``): its key stays with the person it was attached to (the
API cannot remove a thumbnail), recorded as an orphan ``superseded``, and the row is uploaded and attached again."""


@dataclass(frozen=True, slots=True)
class Prior:
    """A row's journaled state before a write."""

    status: Status
    thumbnail_key: str | None
    reason: str | None = None


def check(key: str, prior: Prior | None, target: Status, thumbnail_key: str | None) -> None:
    """Raise ``JournalStateError`` unless ``prior -> target`` is allowed (with ``thumbnail_key`` as the new key).

    The one rule that guards "never upload twice": an uploaded row keeps its key until its content changes.
    """
    source = prior.status if prior is not None else None
    if target not in TRANSITIONS[source]:
        raise JournalStateError(
            f"Row {key!r} cannot go from {source.value if source else 'new'} to {target.value}."
        )
    keeps = {U: (U, A, F, R), F: (A,), A: (A,), R: (A,)}  # moves that must keep the row's key
    if prior is not None and target in keeps.get(prior.status, ()) and thumbnail_key != prior.thumbnail_key:
        raise JournalStateError(
            f"Row {key!r} holds key {prior.thumbnail_key}; refusing to record it as {target.value} with "
            f"key {thumbnail_key}."
        )


def orphans_of(prior: Prior | None, target: Status, thumbnail_key: str | None) -> list[tuple[str, str]]:
    """``(orphaned key, reason)`` pairs that ``prior -> target`` (new key ``thumbnail_key``) leaves behind.

    Reasons: ``superseded`` (a presigned key replaced by a newer one), ``interrupted`` (a run stopped with the
    row in flight: its PUT may or may not have happened), ``abandoned`` (the row ended without using its
    presigned key), ``failed`` (the row failed holding a key), ``replaced`` (an uploaded key whose source
    changed), ``superseded`` (an attached key whose row is attached again: it stays with its person), ``expired``
    (an uploaded key that failed its attach and is replaced by a fresh upload),
    ``unattached`` (the key of a row rejected ``person_full`` after its upload, replaced or dropped).
    """
    found: list[tuple[str, str]] = []
    old = prior.thumbnail_key if prior is not None else None
    if prior is not None and old:
        reason = _left_behind(prior.status, target, old, thumbnail_key)
        if reason is not None:
            found.append((old, reason))
    keeps_key = prior is not None and prior.status in (U, F) and old == thumbnail_key  # an attach that failed
    if target is F and thumbnail_key and not keeps_key:
        found.append((thumbnail_key, "failed"))
    return found


def _left_behind(status: Status, target: Status, old: str, thumbnail_key: str | None) -> str | None:
    """Why the key ``old`` a row held in ``status`` is an orphan once it goes to ``target`` with
    ``thumbnail_key`` (``orphans_of``), or ``None`` when the move keeps it."""
    changed = old != thumbnail_key
    if status is PS:
        if not changed:
            return None
        if target is P:
            return "interrupted"
        return "superseded" if thumbnail_key else "abandoned"
    moved_on = {U: target is P, A: target is P, F: target is not A and changed, R: changed}
    words = {U: "replaced", A: "superseded", F: "expired", R: "unattached"}
    return words[status] if moved_on.get(status, False) else None


def this_run(prior: Prior | None, target: Status, thumbnail_key: str | None, reason: str | None) -> str:
    """What a write does to a row, as the results' ``this_run`` says it (``result_fields.THIS_RUN``): the new status's
    word, except ``rechecked`` for a row found as it was (a row re-recorded with its own key: a new stamp; a
    rejection given the same reason again) and ``reopened`` for a row sent back to ``pending``."""
    if prior is not None and prior.status is target:
        if target in (U, A) and prior.thumbnail_key == thumbnail_key:
            return "rechecked"
        if target is R and prior.reason == reason:
            return "rechecked"
    if target is P:
        return "reopened"
    return target.value
