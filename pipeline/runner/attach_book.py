"""``AttachBook``: what the attach side of a run knows, per person, from the manifest's rows (``collect``) and
each person's look-up, which happens only when one of its rows is about to be uploaded or one of its held
keys reaches the attach stage (``attach_lookups.Lookups``).

Until its look-up a target is only its rows; ``learn`` turns the person as the workspace holds it into what
the planner needs (``info``: the person before this run's rows; ``count``: its thumbnails now) and the rows
refused (``person_full``, ``person_not_found``). Rows refused before any look-up (``invalid_person``: a name
the API cannot take) are known from the start. ``reopen`` takes back a row the journal held attached whose
source changed: its new key is attached again, and its old thumbnail stays with the person and counts there.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pipeline.attach import AttachRow, PersonInfo, PersonState, Target, plan
from pipeline.attach.planner import RowRefusal

if TYPE_CHECKING:
    from pipeline.runner.attach_lookups import Lookups

__all__ = ["AttachBook"]


@dataclass
class AttachBook:
    """What the attach stage knows, per person: all its rows in input order (``groups``), once looked up
    its accepted rows (``rows``: a key once uploaded, ``attached`` once done), what the person was before
    this run (``info``), its thumbnail count now, and the rows refused before upload. Owned by one event
    loop."""

    person_max: int = 100
    groups: dict[Target, list[AttachRow]] = field(default_factory=dict)
    rows: dict[Target, list[AttachRow]] = field(default_factory=dict)
    info: dict[Target, PersonInfo] = field(default_factory=dict)
    count: dict[Target, int] = field(default_factory=dict)
    refusals: dict[str, RowRefusal] = field(default_factory=dict)
    target_by_key: dict[str, Target] = field(default_factory=dict)
    learned: set[Target] = field(default_factory=set)
    created: set[Target] = field(default_factory=set)
    extended: set[Target] = field(default_factory=set)
    attached: int = 0
    superseded: int = 0
    held: dict[str, Target] = field(default_factory=dict)
    """Rows the journal holds attached to their person, by key (a changed source brings one back)."""
    reopened: set[str] = field(default_factory=set)
    """Rows the journal held attached to this very person whose new key this run attaches again."""
    lookups: Lookups | None = None
    held_refused: Callable[[str, RowRefusal], None] | None = None
    """Records a held key (uploaded by an earlier run) that its person's look-up refused (``AttachRoute``)."""

    kept_full: set[str] = field(default_factory=set)
    """Rows the journal holds rejected ``person_full`` whose person has nothing else to attach in this run:
    left as they are (looking the person up only to refuse them again would be the run's only person call)."""

    @classmethod
    def of(cls, rows: list[AttachRow], person_max: int, refusals: dict[str, RowRefusal],
           rejected: AbstractSet[str] = frozenset(), full: AbstractSet[str] = frozenset()) -> AttachBook:
        """The book of ``rows`` (``collect``'s) before any look-up; ``refusals`` are known without one;
        ``rejected`` are the rows the journal holds rejected, ``person_full`` ones among them ``full``."""
        book = cls(person_max=person_max, refusals=dict(refusals))
        busy: set[Target] = set()
        for row in rows:
            book.groups.setdefault(row.target, []).append(row)
            if row.attached:
                book.held[row.row_key] = row.target
            elif row.row_key not in refusals:
                book.target_by_key[row.row_key] = row.target
                if row.row_key not in rejected:
                    busy.add(row.target)  # a row to upload or attach: the person is looked up anyway
        book.kept_full = {k for k in full if k in book.target_by_key and book.target_by_key[k] not in busy}
        return book

    def wants(self, row_key: str) -> bool:
        """Whether the row is one to attach (it has a person and was not refused)."""
        return row_key in self.target_by_key

    def known(self, target: Target) -> bool:
        """Whether the target was looked up (its refusals are decided)."""
        return target in self.learned

    def learn(self, target: Target, state: PersonState | None) -> None:
        """The target's person as the workspace holds it (``None``: no such person): its info, count and
        refusals. Only the first call counts."""
        if target in self.learned:
            return
        self.learned.add(target)
        group = self.groups.get(target, [])
        mine = sum(r.attached for r in group)
        if state is not None:
            info: PersonInfo | None = PersonInfo(state.id, max(0, state.count - mine), state.primary_id is not None)
            self.count[target] = state.count
        elif target.person_id is None:
            info, self.count[target] = PersonInfo(None), 0
        else:
            info = None  # an unknown id: the planner refuses its rows person_not_found
        known = {target: info} if info is not None and info.person_id is not None else {}
        for refusal in plan(group, known, self.person_max).refused:
            self.refusals[refusal.row_key] = refusal
            self.target_by_key.pop(refusal.row_key, None)
        if info is None:
            return
        self.info[target] = info
        accepted = [r for r in group if r.row_key not in self.refusals]
        if accepted:
            self.rows[target] = accepted

    def reopen(self, row_key: str, target: Target) -> RowRefusal | None:
        """A row the journal held attached to ``target``'s person is uploaded again (its source changed): its
        new key is to attach, and its old thumbnail stays with the person (the API cannot remove one), so it
        counts among the person's others. ``person_full`` when that leaves no room for the new key."""
        if row_key in self.reopened or row_key not in self.held:
            return self.refusals.get(row_key)
        self.reopened.add(row_key)
        del self.held[row_key]
        for table in (self.groups, self.rows):
            group = table.get(target, [])
            for i, row in enumerate(group):
                if row.row_key == row_key:
                    group[i] = replace(row, attached=False, thumbnail_key=None)
        self.target_by_key[row_key] = target
        if target not in self.info:
            return None  # not looked up yet: its look-up counts the old thumbnail among the person's others
        info = self.info[target]
        self.info[target] = info = replace(info, count=info.count + 1)
        group = self.rows.get(target, [])
        if info.count + len(group) > self.person_max:
            self.rows[target] = [r for r in group if r.row_key != row_key]
            del self.target_by_key[row_key]
            refusal = self.refusals[row_key] = RowRefusal(
                row_key, "person_full", f"{target} would hold more than {self.person_max} thumbnails (its "
                "earlier thumbnail of this row stays with it: the API cannot remove one)")
            return refusal
        return None

    def arrive(self, row_key: str, thumbnail_key: str) -> Target:
        """Note the row's uploaded key; returns its target."""
        target = self.target_by_key[row_key]
        for table in (self.groups, self.rows):
            group = table.get(target, [])
            for i, row in enumerate(group):
                if row.row_key == row_key:
                    group[i] = replace(row, thumbnail_key=thumbnail_key)
        return target

    def settle(self, target: Target, row_keys: set[str], *, attached: bool) -> None:
        """The rows are attached (or, failed or refused, leave this run's plan)."""
        group = self.rows.get(target, [])
        if attached:
            self.rows[target] = [replace(r, attached=True) if r.row_key in row_keys else r for r in group]
            self.attached += len(row_keys)
        else:
            self.rows[target] = [r for r in group if r.row_key not in row_keys]
        for key in row_keys:
            self.target_by_key.pop(key, None)

    def counts(self) -> dict[str, int]:
        """Persons created and extended and thumbnails attached (and attached again after a change of
        source or person: ``thumbnails_superseded``) by this run (``Summary.attach``)."""
        return {"persons_created": len(self.created), "persons_extended": len(self.extended - self.created),
                "thumbnails_attached": self.attached, "thumbnails_superseded": self.superseded}

    def waiting(self, target: Target) -> int:
        """Rows of the person that are neither uploaded nor attached yet."""
        return sum(1 for r in self.rows.get(target, []) if r.thumbnail_key is None and not r.attached)
