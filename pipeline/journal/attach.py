"""The journal's attach bookkeeping (``--attach``): persons known to the run and attach intents.

An *intent* is journaled (committed) before each create or add call and removed in the same transaction as
the call's outcome (rows ``attached`` or ``failed``); one left behind means the process died during the
call, and the next run reconciles it (``runner/attach_prep.py``): a create by looking the name up, an add
by comparing the person's thumbnail count with ``count_before`` plus the keys sent. Every write goes
through ``Journal._write`` with an ``AttachWrite``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pipeline.models import RowResult, Status

__all__ = ["AttachIntent", "AttachJournal", "AttachWrite", "KnownPerson"]


@dataclass(frozen=True, slots=True)
class AttachIntent:
    """A create (``person_id`` ``None``) or add call about to be made for ``target`` (its text form:
    ``name:<name>`` or ``id:<person id>``), with the rows and keys it sends and the person's thumbnail
    count before it."""

    id: str
    kind: str
    target: str
    person_id: str | None
    row_keys: tuple[str, ...]
    thumbnail_keys: tuple[str, ...]
    count_before: int


@dataclass(frozen=True, slots=True)
class KnownPerson:
    """A target's person id as journaled, and whether this tool created it."""

    target: str
    person_id: str
    created: bool


@dataclass(frozen=True, slots=True)
class AttachWrite:
    """The attach facts written with one ``Journal._write`` transaction."""

    persons: tuple[KnownPerson, ...] = ()
    add_intents: tuple[AttachIntent, ...] = ()
    drop_intents: tuple[str, ...] = ()


def apply(conn: sqlite3.Connection, write: AttachWrite, now: str) -> None:
    """Write ``write`` inside the caller's transaction (``Journal._write`` only)."""
    conn.executemany(
        "INSERT INTO persons (target, person_id, created, recorded_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (target) DO UPDATE SET person_id = excluded.person_id, "
        "created = MAX(persons.created, excluded.created)",
        [(p.target, p.person_id, int(p.created), now) for p in write.persons])
    conn.executemany(
        "INSERT OR REPLACE INTO attach_intents (id, kind, target, person_id, row_keys, thumbnail_keys, "
        "count_before, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(i.id, i.kind, i.target, i.person_id, json.dumps(i.row_keys), json.dumps(i.thumbnail_keys),
          i.count_before, now) for i in write.add_intents])
    conn.executemany("DELETE FROM attach_intents WHERE id = ?", [(i,) for i in write.drop_intents])


class AttachJournal:
    """The attach readers and writers of ``Journal`` (a mixin: ``_conn``, ``_write`` and ``records`` are
    the journal's)."""

    _conn: sqlite3.Connection

    if TYPE_CHECKING:  # provided by Journal
        def _write(self, results: Sequence[RowResult], *, drop: Sequence[str] = (),
                   attach: AttachWrite | None = None) -> None: ...

        def records(self, keys: Sequence[str]) -> dict[str, RowResult]: ...

    def known_persons(self) -> dict[str, KnownPerson]:
        """Every person the journal knows, by target text."""
        return {t: KnownPerson(t, pid, bool(created)) for t, pid, created in
                self._conn.execute("SELECT target, person_id, created FROM persons")}

    def intents(self) -> list[AttachIntent]:
        """The attach calls a killed run left unfinished, oldest first."""
        query = ("SELECT id, kind, target, person_id, row_keys, thumbnail_keys, count_before FROM attach_intents "
                 "ORDER BY recorded_at, id")
        return [AttachIntent(i, kind, target, pid, tuple(json.loads(rows)), tuple(json.loads(keys)), int(before))
                for i, kind, target, pid, rows, keys, before in self._conn.execute(query)]

    def intend(self, intent: AttachIntent) -> None:
        """Journal (committed) a create/add call before it is made."""
        self._write((), attach=AttachWrite(add_intents=(intent,)))

    def remember_person(self, person: KnownPerson, *, intent: str | None = None) -> None:
        """Journal a target's person id (found, or created); ``intent`` is dropped in the same transaction."""
        self._write((), attach=AttachWrite(persons=(person,), drop_intents=(intent,) if intent else ()))

    def mark_attached(self, keys: Sequence[str], person: KnownPerson, attached_at: str, *,
                      intent: str | None = None, details: Mapping[str, str] | None = None) -> list[RowResult]:
        """The rows ``keys`` (uploaded, or failed to attach) are attached to ``person``: one transaction with
        the person and the end of ``intent``; ``details`` says, per row key, what else happened (a row
        attached again). Returns the journaled records."""
        found = self.records(keys)
        notes = details or {}
        # A row attached again says so in this run's results (its own ``this_run`` label: ``run_id`` left to the
        # journal's writer).
        done = [replace(found[k], status=Status.ATTACHED, person_id=person.person_id, attached_at=attached_at,
                        reason=None, detail=notes.get(k), run_id=None if k in notes else found[k].run_id,
                        this_run="reattached" if k in notes else found[k].this_run)
                for k in keys if k in found]
        self._write(done, attach=AttachWrite(persons=(person,), drop_intents=(intent,) if intent else ()))
        return done

    def mark_attach_failed(self, keys: Sequence[str], detail: str, *, intent: str | None = None) -> list[RowResult]:
        """The rows ``keys`` keep their key and end ``failed`` (``attach_failed``, ``detail``); ``intent``
        ends in the same transaction. Returns the journaled records."""
        found = self.records(keys)
        failed = [replace(found[k], status=Status.FAILED, reason="attach_failed", detail=detail)
                  for k in keys if k in found and found[k].status is not Status.ATTACHED]
        self._write(failed, attach=AttachWrite(drop_intents=(intent,) if intent else ()))
        return failed

    def forget_intent(self, intent: str) -> None:
        """An intent whose call is known not to have happened."""
        self._write((), attach=AttachWrite(drop_intents=(intent,)))
