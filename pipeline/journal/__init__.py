"""The SQLite journal: the state of row keys for one workspace, and the source of truth of every run.

A row's key is its ``id``, else its path as written. The journal is not a copy of one manifest: a re-run with
an edited or grown manifest looks its keys up here and does only what is new, unfinished or changed. States
and transitions live in ``states`` (one table, and the only place orphans are derived); every write goes
through ``Journal._write``, one committed transaction (WAL, ``synchronous=NORMAL``: a killed process loses
nothing committed). The tables are each format version's frozen DDL (``schema``), upgraded in place by
``PRAGMA user_version``; ``opening`` connects and checks the file and the workspace; ``lock`` holds an OS
lock on ``<journal>.lock`` while it is open: two runs never share a journal, and readers never wait. It
stores keys, reasons and digests only; never a URL or a signature. Use it from one thread at a time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from operator import attrgetter
from pathlib import Path
from types import TracebackType

from pipeline.errors import JournalStateError, LocalWriteError
from pipeline.journal import attach as attach_facts
from pipeline.journal import states
from pipeline.journal.attach import AttachIntent, AttachJournal, AttachWrite, KnownPerson
from pipeline.journal.lock import JournalLock
from pipeline.journal.opening import connect, copy_for_dry_run, note_intact, now_text
from pipeline.journal.reads import _COLS, Entry, JournalReads, Orphan, _chunks, _marks, _result
from pipeline.journal.schema import COLUMNS, SCHEMA_VERSION
from pipeline.models import RowResult, Status

__all__ = ["SCHEMA_VERSION", "AttachIntent", "Entry", "Journal", "JournalStateError", "KnownPerson", "Orphan"]

_UPSERT = (
    f"INSERT OR REPLACE INTO rows (key, {_COLS}, updated_at) "  # noqa: S608 (constants)
    f"VALUES ({', '.join('?' * (len(COLUMNS) + 2))})"
)
_ORPHAN = "INSERT OR IGNORE INTO orphans (key, thumbnail_key, reason, recorded_at) VALUES (?, ?, ?, ?)"


def _write_error(path: Path, exc: BaseException) -> LocalWriteError:
    return LocalWriteError(
        f"The journal {path} could not be written ({exc}); the state committed so far is kept: free some "
        "space (or fix the folder's permissions) and run the same command again."
    )


class Journal(AttachJournal, JournalReads):
    """An open journal. Build with ``Journal.open`` (or ``Journal.scratch`` for a dry run); close with
    ``close()`` or a ``with`` block."""

    def __init__(self, conn: sqlite3.Connection, path: Path, created: bool, migrated_from: int,
                 lock: JournalLock | None = None) -> None:
        self._conn = conn
        self._lock = lock
        self._closed = False
        self.path = path
        self.created = created
        self.migrated_from = migrated_from
        """The format version found on open when it was upgraded (0: none)."""
        (legacy,) = conn.execute("SELECT EXISTS(SELECT 1 FROM rows WHERE legacy_idx IS NOT NULL)").fetchone()
        self.has_legacy = bool(legacy)
        self.run_id: str | None = None
        """The run writing now: every row it writes gets this ``run_id`` and a ``this_run`` label."""

    @classmethod
    def open(cls, path: Path, *, workspace: str) -> Journal:
        """Take the journal's lock (``<path>.lock``, never waiting; held until ``close()``), then open
        (creating or upgrading) the journal at ``path`` for ``workspace``. Raises ``JournalBusyError`` (another
        run holds it), ``JournalMismatchError`` (another workspace's), ``ConfigError`` (not a journal, damaged,
        an unknown state, newer than this release, read-only)."""
        path = Path(path)
        lock = JournalLock.take(path)
        try:
            conn, created, found = connect(path, workspace)
        except BaseException:
            lock.release()
            raise
        return cls(conn, path, created, found if 0 < found < SCHEMA_VERSION else 0, lock)

    @classmethod
    def scratch(cls, source: Path | None, dest: Path, *, workspace: str) -> Journal:
        """A private copy of the journal at ``source`` (if it exists) at ``dest``, opened: what a dry run
        works on, so it sees what a real run would see and changes nothing. A snapshot of the last commit: it
        never waits on a run holding ``source``, and reads one on a read-only mount."""
        copy_for_dry_run(source, dest)
        return cls.open(dest, workspace=workspace)

    def close(self) -> None:
        """Close the connection (committed writes are already durable; SQLite folds the WAL in), note the file's
        stamp (the next open need not check its pages again), then release the lock; idempotent."""
        self._conn.close()
        if self._lock is not None:
            if not self._closed:
                note_intact(self.path)
            self._closed = True
            self._lock.release()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _write_error(self.path, exc) from exc
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            if isinstance(exc, (sqlite3.OperationalError, OSError)):
                raise _write_error(self.path, exc) from exc
            raise

    # -- writing: every public writer below goes through _write ------------------------------------
    def _write(
        self, results: Sequence[RowResult], *, drop: Sequence[str] = (), attach: AttachWrite | None = None,
    ) -> None:
        """The one writer: check each transition, derive its orphans, upsert, all in one transaction.

        Every orphan comes from a transition (``states.orphans_of``): each round's key is journaled presigned
        before its PUT, so a key replaced by the next round is seen here. ``drop`` are keys whose records leave
        (a legacy record adopted under a new key); ``attach`` the persons and intents written in the same
        transaction (``journal/attach.py``).
        """
        if not results and attach is None:
            return
        now = now_text()
        with self._transaction() as conn:
            prior = self._priors(conn, [r.key for r in results])
            found: list[tuple[str, str, str, str]] = []
            stamped = []
            for result in results:
                before = prior.get(result.key)
                states.check(result.key, before, result.status, result.thumbnail_key)
                found.extend((result.key, key, why, now)
                             for key, why in states.orphans_of(before, result.status, result.thumbnail_key))
                stamped.append(self._stamped(result, before))
            results = stamped
            for part in _chunks(drop):
                conn.execute(f"DELETE FROM rows WHERE key IN ({_marks(len(part))})", tuple(part))  # noqa: S608
            conn.executemany(_UPSERT, (_values(r, now) for r in results))
            if found:
                conn.executemany(_ORPHAN, found)
            if attach is not None:
                attach_facts.apply(conn, attach, now)

    def _stamped(self, result: RowResult, prior: states.Prior | None) -> RowResult:
        """``result`` with this run's id and what this run did to the row: the writer's own label when it names
        one (``this_run`` set, ``run_id`` not), else ``states.this_run`` of the transition."""
        if self.run_id is None:
            return result
        if result.this_run is not None and result.run_id is None:
            return replace(result, run_id=self.run_id)
        label = states.this_run(prior, result.status, result.thumbnail_key, result.reason)
        return replace(result, run_id=self.run_id, this_run=label)

    @staticmethod
    def _priors(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, states.Prior]:
        prior: dict[str, states.Prior] = {}
        for part in _chunks(keys):
            query = f"SELECT key, status, thumbnail_key, reason FROM rows WHERE key IN ({_marks(len(part))})"  # noqa: S608
            for key, status, thumb, reason in conn.execute(query, tuple(part)):
                prior[key] = states.Prior(Status(status), thumb, reason)
        return prior

    def mark_presigned(self, key: str, thumbnail_key: str, *, source_sha256: str | None = None,
                       source_stamp: str | None = None, source_path: str | None = None) -> None:
        """Journal (committed) that ``thumbnail_key`` was presigned for the row, before its PUT starts.

        Raises ``JournalStateError`` if the row is uploaded: presigning it again would upload it twice.
        """
        self._write([RowResult(0, key, Status.PRESIGNED, thumbnail_key=thumbnail_key, source_sha256=source_sha256,
                               source_stamp=source_stamp, source_path=source_path)])

    def record(self, result: RowResult) -> None:
        """Journal one finished row in its own commit."""
        self.record_many((result,))

    def record_many(self, results: Sequence[RowResult]) -> None:
        """Journal finished rows in one transaction: all of them or, on error, none.

        Only terminal states are accepted, and ``uploaded`` needs a ``thumbnail_key`` (``ValueError``). An
        uploaded row may only be re-recorded with its own key (``JournalStateError``).
        """
        for result in results:
            if not result.status.terminal:
                raise ValueError(f"Row {result.key!r}: only finished rows are recorded, not {result.status.value!r}.")
            if result.status is Status.UPLOADED and not result.thumbnail_key:
                raise ValueError(f"Row {result.key!r} is uploaded but has no thumbnail_key.")
        self._write(results)

    def reopen(self, key: str) -> None:
        """An uploaded (or attached) row whose source content (or person) changed goes back to ``pending``; its
        key is kept as an orphan (``replaced``; an attached one ``superseded``: it stays with its person) and the
        row will get a new upload."""
        self._write([RowResult(0, key, Status.PENDING)])

    def restamp(self, key: str, stamp: str | None, path: str | None = None) -> None:
        """Remember a new source stamp (and path cell) for a finished row whose content was shown unchanged."""
        record = self.records([key]).get(key)
        if record is None:
            return
        new = replace(record, source_stamp=stamp or record.source_stamp, source_path=path or record.source_path)
        if new != record:
            self._write([new])

    def reset_inflight(self) -> int:
        """For a resumed run: rows left ``presigned`` go back to ``pending``; their keys become orphans
        (``interrupted``: the PUT may or may not have happened). Returns how many rows."""
        keys = [key for (key,) in self._conn.execute("SELECT key FROM rows WHERE status = 'presigned'")]
        self._write([RowResult(0, key, Status.PENDING) for key in keys])
        return len(keys)

    def adopt_legacy(self, index: int, source_sha256: str, key: str) -> RowResult | None:
        """A row of a version-1 journal (keyed by position ``index``) whose content is ``source_sha256`` and
        that was uploaded is this run's row ``key``: move its record to ``key`` and return it; else ``None``."""
        if not self.has_legacy:
            return None
        found = self._conn.execute(
            f"SELECT key, {_COLS} FROM rows WHERE legacy_idx = ? AND source_sha256 = ? "  # noqa: S608
            "AND status = 'uploaded'", (index, source_sha256),
        ).fetchone()
        if found is None or found[0] == key or self.lookup([key]):
            return None
        adopted = replace(_result(found), key=key)
        self._write([adopted], drop=[found[0]])
        return adopted


_FIELDS = attrgetter(*COLUMNS[1:])  # every column after ``status``
assert COLUMNS[0] == "status"


def _values(r: RowResult, now: str) -> tuple[object, ...]:
    return (r.key, r.status.value, *_FIELDS(r), now)
