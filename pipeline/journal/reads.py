"""The journal's readers (a mixin of ``Journal``: ``_conn`` is the journal's): what the plan, the results
and the attach stage read, each a few indexed queries per thousand keys."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from pipeline.journal.schema import COLUMNS
from pipeline.models import RowResult, Status

__all__ = ["Entry", "JournalReads", "Orphan"]

_CHUNK = 500  # keys per IN (...) query: far below SQLite's variable limit, large enough to be cheap
_COLS = ", ".join(COLUMNS)
_DONE = "status IN ({})".format(", ".join(f"'{s.value}'" for s in Status if s.terminal))


def _as_result(column: str) -> str:
    """``column`` of a ``rows`` record as the results show it (``Journal.results_of``; ``?`` in order: the
    unfinished reason, its detail, the reason again for ``this_run``, this run's id)."""
    shown = {"status": f"CASE WHEN {_DONE} THEN status ELSE 'pending' END",
             "reason": f"CASE WHEN {_DONE} THEN reason ELSE ?1 END",
             "detail": f"CASE WHEN {_DONE} THEN detail ELSE ?2 END",
             "attempts": f"CASE WHEN {_DONE} THEN attempts ELSE 0 END",
             "run_id": "run_id",
             "this_run": f"CASE WHEN NOT {_DONE} THEN ?3 WHEN run_id = ?4 THEN this_run ELSE 'unchanged' END"}
    return shown.get(column, f"CASE WHEN {_DONE} THEN {column} END")


_RESULTS = f"SELECT key, {', '.join(_as_result(c) for c in COLUMNS)}, status FROM rows"  # noqa: S608 (constants)
_STATUS = {status.value: status for status in Status}
"""Text -> ``Status`` without the enum's call per row."""
_new = tuple.__new__


@dataclass(frozen=True, slots=True)
class Orphan:
    """A key presigned (and maybe uploaded) that is not its row's key; it may exist server-side until it
    expires. Named only by the journal, from its own transitions: ``reason`` is one of ``states.orphans_of``'s."""

    key: str
    thumbnail_key: str
    reason: str
    recorded_at: str


class Entry(NamedTuple):
    """What a run needs to know about a key before deciding what to do with its row (a named tuple: a no-op
    re-run builds one per row, and a tuple costs a third of a frozen dataclass)."""

    status: Status
    thumbnail_key: str | None
    reason: str | None
    source_sha256: str | None
    source_stamp: str | None
    uploaded_at: str | None = None
    person_id: str | None = None
    source_path: str | None = None
    """The path cell the row was last worked on with (``None`` in rows of journals older than version 4)."""


def _chunks(keys: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start : start + _CHUNK]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class JournalReads:
    """The readers of ``Journal``."""

    _conn: sqlite3.Connection
    run_id: str | None

    def lookup(self, keys: Sequence[str]) -> dict[str, Entry]:
        """The journaled entries of those ``keys`` that have one (a few indexed queries per thousand keys)."""
        found: dict[str, Entry] = {}
        for part in _chunks(keys):
            query = ("SELECT key, status, thumbnail_key, reason, source_sha256, source_stamp, uploaded_at, "  # noqa: S608
                     f"person_id, source_path FROM rows WHERE key IN ({_marks(len(part))})")
            # tuple.__new__: a NamedTuple's own constructor is Python code, and a no-op re-run builds one a row.
            found.update({r[0]: _new(Entry, (_STATUS[r[1]], *r[2:])) for r in self._conn.execute(query, part)})
        return found

    def stamps(self, keys: Sequence[str]) -> dict[str, tuple[str, str | None, str | None]]:
        """``(status as text, source_stamp, source_path)`` of those ``keys`` that have a row: what the plan needs
        to leave a finished, unchanged row alone (a narrow query and a plain tuple: half the cost of
        ``lookup``, paid by every row of a nightly no-op)."""
        found: dict[str, tuple[str, str | None, str | None]] = {}
        for part in _chunks(keys):
            query = f"SELECT key, status, source_stamp, source_path FROM rows WHERE key IN ({_marks(len(part))})"  # noqa: S608
            found.update({r[0]: r[1:] for r in self._conn.execute(query, part)})
        return found

    def records(self, keys: Sequence[str]) -> dict[str, RowResult]:
        """The full journaled records of those ``keys`` that have one (``index`` is 0: the caller's to set)."""
        found: dict[str, RowResult] = {}
        for part in _chunks(keys):
            query = f"SELECT key, {_COLS} FROM rows WHERE key IN ({_marks(len(part))})"  # noqa: S608
            for record in self._conn.execute(query, tuple(part)):
                found[record[0]] = _result(record)
        return found

    def results_of(self, keys: Sequence[str], unfinished: tuple[str, str]) -> dict[str, tuple[object, ...]]:
        """Those ``keys``' journaled records as this run's results show them, as tuples of ``key``, the
        ``COLUMNS`` (``status`` as text) and the journaled status as it is: a row not finished is ``pending``
        with ``unfinished``'s reason and detail (and ``this_run`` that reason); a row an earlier run changed
        last is ``unchanged`` (its ``run_id`` says which run). Worked out by SQLite, with no Python per row: the
        results of a nightly no-op cost a query and a transposition. Keys without a record are left out."""
        found: dict[str, tuple[object, ...]] = {}
        head = (*unfinished, unfinished[0], self.run_id)
        for part in _chunks(keys):
            query = f"{_RESULTS} WHERE key IN ({_marks(len(part))})"
            found.update({r[0]: r for r in self._conn.execute(query, (*head, *part))})
        return found

    def size(self) -> int:
        """How many rows the journal holds (a count without reading the records: a sixth of ``counts``)."""
        return int(self._conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0])

    def counts(self) -> dict[str, int]:
        """Journaled rows per status (every ``Status`` value is a key)."""
        found = dict(self._conn.execute("SELECT status, COUNT(*) FROM rows GROUP BY status").fetchall())
        return {status.value: int(found.get(status.value, 0)) for status in Status}

    def find_by_sha256(self, sha256: str) -> tuple[str, str | None] | None:
        """``(key, thumbnail_key)`` of a row with this content that is uploaded or being uploaded
        (``thumbnail_key`` is ``None`` until it is uploaded), preferring an uploaded one. Indexed."""
        found = self._conn.execute(
            "SELECT key, status, thumbnail_key FROM rows WHERE source_sha256 = ? "
            "AND status IN ('uploaded', 'presigned') ORDER BY status = 'uploaded' DESC, key LIMIT 1",
            (sha256,),
        ).fetchone()
        if found is None:
            return None
        key, status, thumbnail_key = found
        return key, thumbnail_key if status == Status.UPLOADED.value else None

    def orphans(self) -> list[Orphan]:
        """Every orphaned key, by row key then key."""
        query = "SELECT key, thumbnail_key, reason, recorded_at FROM orphans ORDER BY key, thumbnail_key"
        return [Orphan(*record) for record in self._conn.execute(query)]


def _result(record: Sequence[object]) -> RowResult:
    fields = dict(zip(COLUMNS, record[1:], strict=True))
    fields["status"] = Status(str(fields["status"]))
    return RowResult(0, str(record[0]), **fields)  # type: ignore[arg-type]
