"""The attach plan: which create and add calls to make for the rows at hand. Pure: no I/O, no clock.

The runner calls ``plan`` whenever it has keys to attach (every few seconds, or when a key nears
``attach_within``), with *all* the rows of the persons involved, uploaded or not, so that the limits and
the primary are decided on the whole person:

- **Capacity**: a person holds at most ``person_max`` thumbnails counting what it had before this run
  (``PersonInfo.count``). Its rows past that are refused ``person_full`` -- the marked primary row keeps
  its place, then rows in input order -- so ``plan`` over the rows before any upload tells which rows not
  to upload.
- **Primary**: the row marked primary; else, for a person this run creates (or one without a primary), its
  first accepted row in input order. A create needs one primary at once: when the designated row is not
  uploaded yet, the first uploaded row stands in and the designated row takes over when it is added.
  An existing person keeps its primary unless a row is marked.
- **Calls**: a create (person not yet created) of at most 100 keys, the designated row first when it is
  there, then adds of at most 100 each, in input order. Rows already attached are skipped.

``validate`` finds persons with two rows marked primary (the run stops before any upload).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipeline.attach.models import MAX_PER_CALL, Thumb

__all__ = [
    "AttachRow",
    "PersonInfo",
    "Plan",
    "PlannedCall",
    "PlannedThumb",
    "PrimaryConflict",
    "RowRefusal",
    "Target",
    "plan",
    "validate",
]


@dataclass(frozen=True, slots=True)
class Target:
    """Whom a row belongs to: a person ``name`` (found or created) or an existing ``person_id``; exactly one."""

    name: str | None = None
    person_id: str | None = None

    def __post_init__(self) -> None:
        if (self.name is None) == (self.person_id is None):
            raise ValueError("A target is a person name or a person id, exactly one of them.")

    def __str__(self) -> str:
        return f"person id {self.person_id}" if self.person_id is not None else f"person {self.name!r}"


@dataclass(frozen=True, slots=True)
class AttachRow:
    """One manifest row with a person: its key, whom it belongs to, whether it is marked primary, its
    ``thumbnail_key`` once uploaded, and whether that key is attached already."""

    row_key: str
    target: Target
    primary: bool = False
    thumbnail_key: str | None = None
    attached: bool = False


@dataclass(frozen=True, slots=True)
class PersonInfo:
    """What is known of a target's person: ``person_id`` (``None``: not created yet), and the thumbnail
    ``count`` and whether it ``has_primary``, both as they were *before* this run's rows."""

    person_id: str | None
    count: int = 0
    has_primary: bool = False


@dataclass(frozen=True, slots=True)
class PlannedThumb:
    """A row's key in a call, and whether it goes in as the primary."""

    row_key: str
    thumbnail_key: str
    primary: bool


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """A ``create`` (``person_id`` ``None``) or an ``add``; an add with ``person_id`` ``None`` goes to the
    person the create before it in the same plan makes."""

    kind: str
    target: Target
    person_id: str | None
    thumbnails: tuple[PlannedThumb, ...]

    def thumbs(self) -> list[Thumb]:
        """The call's thumbnails as ``PersonsApi`` takes them."""
        return [Thumb(t.thumbnail_key, t.primary) for t in self.thumbnails]


@dataclass(frozen=True, slots=True)
class RowRefusal:
    """A row that will not be attached: ``person_full`` or ``person_not_found`` (an unknown person id)."""

    row_key: str
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The calls to make, in order, and the rows refused."""

    calls: tuple[PlannedCall, ...]
    refused: tuple[RowRefusal, ...]


@dataclass(frozen=True, slots=True)
class PrimaryConflict:
    """Two rows marked primary for one person (the first marked, and a later one)."""

    target: Target
    first_row: str
    second_row: str

    def __str__(self) -> str:
        return f"{self.target} has two rows marked primary: {self.first_row!r} and {self.second_row!r}"


def validate(rows: Sequence[AttachRow]) -> list[PrimaryConflict]:
    """Every person with more than one row marked primary: one conflict per extra marked row, naming it and
    the person's first marked row. Empty when the rows are consistent."""
    first: dict[Target, str] = {}
    conflicts: list[PrimaryConflict] = []
    for row in rows:
        if row.primary:
            if row.target in first:
                conflicts.append(PrimaryConflict(row.target, first[row.target], row.row_key))
            else:
                first[row.target] = row.row_key
    return conflicts


def _by_target(rows: Sequence[AttachRow]) -> dict[Target, list[AttachRow]]:
    groups: dict[Target, list[AttachRow]] = {}
    for row in rows:
        groups.setdefault(row.target, []).append(row)
    return groups


def plan(rows: Sequence[AttachRow], known: Mapping[Target, PersonInfo], person_max: int) -> Plan:
    """The calls that attach every uploaded, unattached row within the limits, and the rows refused.

    ``rows`` in input order (all rows of each person involved); ``known`` has an entry for every person that
    exists (found by name, given by id, or created earlier in this run); a name target without one is
    created, a person-id target without one is refused ``person_not_found``. Raises ``ValueError`` when
    ``validate`` finds a conflict (the caller checks first).
    """
    conflicts = validate(rows)
    if conflicts:
        raise ValueError(str(conflicts[0]))
    calls: list[PlannedCall] = []
    refused: list[RowRefusal] = []
    for target, group in _by_target(rows).items():
        info = known.get(target)
        if info is None and target.person_id is not None:
            refused.extend(RowRefusal(r.row_key, "person_not_found", f"{target} does not exist") for r in group)
            continue
        info = info if info is not None else PersonInfo(None)
        kept, designated = _within_room(target, group, info, person_max, refused)
        calls.extend(_calls(target, info, kept, designated))
    return Plan(tuple(calls), tuple(refused))


def _within_room(target: Target, group: list[AttachRow], info: PersonInfo, person_max: int,
                 refused: list[RowRefusal]) -> tuple[list[AttachRow], AttachRow | None]:
    """The rows of one person that fit in its room (the marked primary first, then input order; the rest are
    added to ``refused`` as ``person_full``), and the row to be its primary: the marked one when it fits, else
    the first kept when the person is new or has none."""
    marked = next((r for r in group if r.primary), None)
    room = max(0, person_max - info.count)
    ordered = ([marked] if marked is not None else []) + [r for r in group if r is not marked]
    accepted = {id(r) for r in ordered[:room]}
    refused.extend(
        RowRefusal(r.row_key, "person_full", f"{target} would hold more than {person_max} thumbnails")
        for r in group if id(r) not in accepted
    )
    kept = [r for r in group if id(r) in accepted]
    designated = marked if marked is not None and id(marked) in accepted else None
    if designated is None and kept and (info.person_id is None or not info.has_primary):
        designated = kept[0]
    return kept, designated


def _calls(target: Target, info: PersonInfo, kept: list[AttachRow], designated: AttachRow | None) -> list[PlannedCall]:
    """The create (if the person is new) and adds for the uploaded, unattached rows of one person."""
    pending = [r for r in kept if r.thumbnail_key is not None and not r.attached]
    if not pending:
        return []
    out: list[PlannedCall] = []
    if info.person_id is None:
        # The designated row goes into the create when it is there; otherwise the first uploaded row stands in.
        head = designated if designated is not None and designated in pending else pending[0]
        rest = [r for r in pending if r is not head]
        batch = [head, *rest[: MAX_PER_CALL - 1]]
        batch.sort(key=pending.index)
        out.append(PlannedCall("create", target, None, tuple(_planned(r, r is head) for r in batch)))
        pending = rest[MAX_PER_CALL - 1:]
    for start in range(0, len(pending), MAX_PER_CALL):
        chunk = pending[start: start + MAX_PER_CALL]
        out.append(PlannedCall("add", target, info.person_id,
                               tuple(_planned(r, r is designated) for r in chunk)))
    return out


def _planned(row: AttachRow, primary: bool) -> PlannedThumb:
    assert row.thumbnail_key is not None
    return PlannedThumb(row.row_key, row.thumbnail_key, primary)
