"""Before any upload: does this input's id space collide with the journal's?

A journal covers a workspace, so two archives that reuse the same ids (``1``, ``2``, ...) for different photos
of different people would silently take each other's rows: the second archive's row ``7`` would be seen as the
first archive's row ``7`` "changed", uploaded again and attached to another person, and the first archive's next
run would do the same back. A known key that comes back with another file *and* another person is that case (a
new photo of the same person is a changed source; the same photo given to another person is a changed person);
the run stops before any upload with the counts, three examples and the way out.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import ConfigError
from pipeline.journal import Journal
from pipeline.manifest import Manifest
from pipeline.models import Row, Status
from pipeline.runner.attach_prep import target_of, target_text
from pipeline.runner.plan import source_of

__all__ = ["Collision", "check_ids", "collisions"]

EXAMPLES = 3


@dataclass(frozen=True, slots=True)
class Collision:
    """A row whose key the journal holds attached to ``person_id`` from ``was``, now naming ``path`` and
    ``target`` (another file, another person)."""

    key: str
    was: str
    path: str
    person_id: str
    target: str


def _collides(row: Row, was_path: str | None, person_id: str | None, persons: dict[str, str]) -> str | None:
    """The row's target text when it names another file and another person than the journal's record."""
    target = target_of(row)
    if target is None or person_id is None or was_path is None or was_path == source_of(row):
        return None
    text = target_text(target)
    now = target.person_id if target.person_id is not None else persons.get(text)
    return text if now != person_id else None


def collisions(manifest: Manifest, journal: Journal) -> tuple[int, list[Collision]]:
    """How many rows collide, and the first ``EXAMPLES`` of them (one pass over the manifest's rows; only rows
    the journal holds attached are looked at)."""
    persons = {t: p.person_id for t, p in journal.known_persons().items()}
    count, shown = 0, list[Collision]()
    for batch in manifest.row_batches():
        mine = [row for row in batch.rows if row.person is not None or row.person_id is not None]
        if not mine:
            continue
        entries = journal.lookup([row.key for row in mine])
        for row in mine:
            entry = entries.get(row.key)
            if entry is None or entry.status is not Status.ATTACHED:
                continue
            target = _collides(row, entry.source_path, entry.person_id, persons)
            if target is None:
                continue
            count += 1
            if len(shown) < EXAMPLES:
                assert entry.source_path is not None and entry.person_id is not None
                shown.append(Collision(row.key, entry.source_path, source_of(row), entry.person_id,
                                       target))
    return count, shown


def check_ids(manifest: Manifest, journal: Journal) -> None:
    """Raise ``ConfigError`` (exit 2, nothing uploaded) when known keys come back with another file and another
    person: the sentence gives the count, three examples and the ways out."""
    count, shown = collisions(manifest, journal)
    if not count:
        return
    examples = "; ".join(f"{c.key!r} was {c.was!r} on person {c.person_id}, now {c.path!r} for {c.target}"
                         for c in shown)
    raise ConfigError(
        f"{count:,} row(s) of {manifest.name} reuse ids that the journal {journal.path} holds for other photos of "
        f"other persons (e.g. {examples}): this looks like another archive with the same ids. Nothing was "
        "uploaded. Give this archive its own journal (--journal PATH), or make its ids distinct "
        "(--id-prefix TEXT, e.g. the archive's name)."
    )
