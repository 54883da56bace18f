"""The SQLite journal: the source of truth for every row's state, so a crash or Ctrl-C loses nothing.

States: ``pending -> presigned -> uploaded``; terminal ``uploaded``, ``rejected``, ``failed``, ``skipped``.
Rows never touched have no record and count as ``pending``. Every write is its own committed transaction
(WAL mode, ``synchronous=NORMAL``): after a killed process, everything committed is still there; after
a power cut, at most the last few commits are lost, never the file.

The journal also guards the "never upload twice" promise: it is held with an exclusive lock for as long
as it is open (a second run on the same journal is refused), and an ``uploaded`` row cannot be given a
new key or state. It stores keys, reasons and digests only; never a URL or a signature.
Use it from one thread (the event loop's).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from operator import attrgetter
from pathlib import Path
from types import TracebackType

from pipeline.errors import ConfigError, JournalMismatchError, JournalStateError
from pipeline.models import RowResult, Status

__all__ = ["SCHEMA_VERSION", "Journal", "JournalStateError", "Orphan", "ResumeInfo"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rows (
    idx INTEGER PRIMARY KEY, key TEXT NOT NULL, status TEXT NOT NULL, thumbnail_key TEXT,
    reason TEXT, detail TEXT, action TEXT, width INTEGER, height INTEGER, bytes INTEGER,
    source_sha256 TEXT, attempts INTEGER NOT NULL DEFAULT 0, uploaded_at TEXT, duplicate_of TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rows_sha256 ON rows (source_sha256, idx) WHERE source_sha256 IS NOT NULL;
CREATE INDEX IF NOT EXISTS rows_inflight ON rows (idx) WHERE status = 'presigned';
CREATE TABLE IF NOT EXISTS orphans (
    idx INTEGER NOT NULL, thumbnail_key TEXT NOT NULL, reason TEXT NOT NULL, recorded_at TEXT NOT NULL,
    PRIMARY KEY (idx, thumbnail_key)
) WITHOUT ROWID;
"""
_COLUMNS = (
    "idx, key, status, thumbnail_key, reason, detail, action, width, height, bytes, source_sha256, "
    "attempts, uploaded_at, duplicate_of"
)
_UPSERT = f"INSERT OR REPLACE INTO rows ({_COLUMNS}, updated_at) VALUES ({', '.join('?' * 15)})"  # noqa: S608
_DETAILS = attrgetter(*_COLUMNS.split(", ")[3:])  # the RowResult fields after idx, key, status
_ORPHAN = "INSERT OR IGNORE INTO orphans (idx, thumbnail_key, reason, recorded_at) VALUES (?, ?, ?, ?)"


@dataclass(frozen=True, slots=True)
class Orphan:
    """A key presigned (and maybe uploaded) that no row ended up using; it may exist server-side.

    ``reason``: ``superseded`` (the row got another key), ``abandoned`` (the row ended without a key),
    ``failed`` (the row failed holding this key), ``interrupted`` (a run stopped mid-upload), or what the
    caller passed to ``add_orphan``.
    """

    index: int
    thumbnail_key: str
    reason: str
    recorded_at: str


@dataclass(frozen=True, slots=True)
class ResumeInfo:
    """The journal's state when a run starts: ``created`` is True for a journal made by this ``open``."""

    created: bool
    counts: dict[str, int]
    """Rows per status, every ``Status`` value present; never-journaled rows count as ``pending``."""
    inflight: int
    """Rows left ``presigned`` by an interrupted run (``mark_orphans_from_inflight`` resets them)."""
    orphans: int


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _done_statuses(retry_failed: bool) -> tuple[str, ...]:
    """The statuses a run leaves alone: finished ones, and ``failed`` unless failed rows are retried."""
    done = (Status.UPLOADED.value, Status.REJECTED.value, Status.SKIPPED.value)
    return done if retry_failed else (*done, Status.FAILED.value)


def _any_key(conn: sqlite3.Connection) -> bool:
    """Whether any row or orphan holds a thumbnail key (one issued under the journal's workspace)."""
    row = conn.execute(
        "SELECT EXISTS(SELECT 1 FROM rows WHERE thumbnail_key IS NOT NULL) OR EXISTS(SELECT 1 FROM orphans)"
    ).fetchone()
    return bool(row[0])


def _mismatch(path: Path, meta: dict[str, str], fingerprint: str, workspace: str) -> str | None:
    if meta.get("schema_version") != str(SCHEMA_VERSION):
        return (
            f"The journal {path} was written in another format (version {meta.get('schema_version')}, "
            f"this program uses {SCHEMA_VERSION}); use a new --journal path."
        )
    if meta.get("workspace") != workspace:
        return (
            f"The journal {path} belongs to workspace {meta.get('workspace')!r}, not {workspace!r}; "
            f"use a new --journal path or --workspace {meta.get('workspace')}."
        )
    if meta.get("fingerprint") != fingerprint:
        return (
            f"The journal {path} belongs to another manifest (made for {meta.get('manifest_name')} "
            f"with {meta.get('rows')} rows; an edited manifest counts as another); "
            "use a new --journal path or the original manifest."
        )
    return None


class Journal:
    """An open journal. Build with ``Journal.open``; close with ``close()`` or a ``with`` block."""

    def __init__(self, conn: sqlite3.Connection, path: Path, rows: int, created: bool) -> None:
        self._conn = conn
        self.path = path
        self.rows = rows
        self.created = created

    @classmethod
    def open(cls, path: Path, *, fingerprint: str, rows: int, workspace: str, manifest_name: str) -> Journal:
        """Create the journal, or reopen it after checking it was made for this manifest and workspace.

        Raises ``JournalMismatchError`` when the fingerprint, workspace or format differ, and
        ``ConfigError`` when the file is not a SQLite database or another run holds it.
        """
        path = Path(path)
        conn: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=0.5)
            # EXCLUSIVE: the first write below takes a lock this connection keeps until close, so two
            # runs can never work on one journal (each would upload the other's pending rows).
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: survives process death, cheap commits
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "meta" not in tables:  # someone else's database: add nothing to it
                raise sqlite3.DatabaseError("it holds other tables")
            conn.executescript(_SCHEMA)  # idempotent; executescript would commit an open transaction anyway
            conn.execute("BEGIN IMMEDIATE")
            meta = dict(conn.execute("SELECT k, v FROM meta").fetchall())
            if not meta:
                keys = ("fingerprint", "workspace", "manifest_name", "rows", "created_at", "schema_version")
                values = (fingerprint, workspace, manifest_name, str(rows), _now(), str(SCHEMA_VERSION))
                conn.executemany("INSERT INTO meta (k, v) VALUES (?, ?)", zip(keys, values, strict=True))
            elif meta.get("workspace") != workspace and meta.get("fingerprint") == fingerprint and not _any_key(conn):
                # Nothing was ever presigned under the old name (e.g. a mistyped --workspace stopped the run at
                # its first call): the journal holds no key tied to it, so the corrected run may adopt it.
                conn.execute("UPDATE meta SET v = ? WHERE k = 'workspace'", (workspace,))
                meta["workspace"] = workspace
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:
                conn.close()
            if "locked" in str(exc):
                hint = ("is in use by another run or program (a sqlite3 shell counts); wait for it to end "
                        "or use a new --journal path.")
            else:
                hint = f"is not a usable journal ({exc}); use a new --journal path."
            raise ConfigError(f"The journal {path} {hint}") from exc
        problem = _mismatch(path, meta, fingerprint, workspace) if meta else None
        if problem:
            conn.close()
            raise JournalMismatchError(problem)
        return cls(conn, path, rows, created=not meta)

    def close(self) -> None:
        """Close the connection (committed writes are already durable); idempotent."""
        self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- reading -----------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Rows per status (every ``Status`` value is a key); unjournaled rows count as ``pending``."""
        found = dict(self._conn.execute("SELECT status, COUNT(*) FROM rows GROUP BY status").fetchall())
        counts = {status.value: int(found.get(status.value, 0)) for status in Status}
        counts[Status.PENDING.value] = self.rows - sum(
            n for s, n in counts.items() if s != Status.PENDING.value
        )
        return counts

    def resume_info(self) -> ResumeInfo:
        """Counts per status, rows left in flight and orphans so far: what a starting run resumes from."""
        counts = self.counts()
        (orphans,) = self._conn.execute("SELECT COUNT(*) FROM orphans").fetchone()
        return ResumeInfo(self.created, counts, counts[Status.PRESIGNED.value], int(orphans))

    def done_indices(self, lo: int, hi: int, *, retry_failed: bool) -> set[int]:
        """Indices in ``[lo, hi)`` a run must skip: uploaded, rejected, skipped; failed too unless retried.

        One range query on the primary key, so a batch costs the same whatever the journal's size.
        """
        statuses = _done_statuses(retry_failed)
        marks = ", ".join("?" * len(statuses))
        query = f"SELECT idx FROM rows WHERE idx >= ? AND idx < ? AND status IN ({marks})"  # noqa: S608
        return {idx for (idx,) in self._conn.execute(query, (lo, hi, *statuses))}

    def done_count(self, *, retry_failed: bool) -> int:
        """How many rows a run skips (the rows ``done_indices`` returns, over the whole manifest)."""
        counts = self.counts()
        return sum(counts[status] for status in _done_statuses(retry_failed))

    def find_by_sha256(self, sha256: str) -> tuple[str, str | None] | None:
        """``(key, thumbnail_key)`` of the lowest-index row with this content that is uploaded or being
        uploaded (``presigned``); ``thumbnail_key`` is ``None`` until that row is uploaded. Indexed."""
        found = self._conn.execute(
            "SELECT key, status, thumbnail_key FROM rows WHERE source_sha256 = ? "
            "AND status IN ('uploaded', 'presigned') ORDER BY idx LIMIT 1",
            (sha256,),
        ).fetchone()
        if found is None:
            return None
        key, status, thumbnail_key = found
        return key, thumbnail_key if status == Status.UPLOADED.value else None

    def orphans(self) -> list[Orphan]:
        """Every orphaned key, by row index then key."""
        query = "SELECT idx, thumbnail_key, reason, recorded_at FROM orphans ORDER BY idx, thumbnail_key"
        return [Orphan(*record) for record in self._conn.execute(query)]

    def results(self, rows: int) -> Iterator[RowResult]:
        """Exactly one ``RowResult`` per index ``0 .. rows-1``, in order, from one streamed query.

        Rows never journaled come out as ``RowResult(index, key="", status=PENDING)``; rows journaled but
        unfinished keep their state (``pending`` or ``presigned``). Mapping those (e.g. to "interrupted")
        is the caller's choice. Do not write to the journal while iterating.
        """
        query = f"SELECT {_COLUMNS} FROM rows WHERE idx >= 0 AND idx < ? ORDER BY idx"  # noqa: S608 (constants)
        cursor = self._conn.execute(query, (rows,))
        expected = 0
        for record in cursor:
            index = record[0]
            while expected < index:
                yield RowResult(expected, "", Status.PENDING)
                expected += 1
            yield RowResult(index, record[1], Status(record[2]), *record[3:])
            expected += 1
        while expected < rows:
            yield RowResult(expected, "", Status.PENDING)
            expected += 1

    # -- writing -----------------------------------------------------------------------------------
    def mark_presigned(
        self, index: int, key: str, thumbnail_key: str, *, source_sha256: str | None = None
    ) -> None:
        """Journal (committed) that ``thumbnail_key`` was presigned for the row, before its PUT starts.

        A different key already presigned for the row becomes an orphan (``superseded``). Raises
        ``JournalStateError`` if the row is already uploaded: presigning it again would upload it twice.
        """
        with self._transaction() as conn:
            prior = conn.execute("SELECT status, thumbnail_key FROM rows WHERE idx = ?", (index,)).fetchone()
            now = _now()
            if prior is not None:
                status, old_key = prior
                if status == Status.UPLOADED.value:
                    raise JournalStateError(
                        f"Row {index} is already uploaded as {old_key}; it must not be presigned again."
                    )
                if status == Status.PRESIGNED.value and old_key and old_key != thumbnail_key:
                    conn.execute(_ORPHAN, (index, old_key, "superseded", now))
            conn.execute(
                "INSERT INTO rows (idx, key, status, thumbnail_key, source_sha256, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (idx) DO UPDATE SET key = excluded.key, status = excluded.status, "
                "thumbnail_key = excluded.thumbnail_key, updated_at = excluded.updated_at, "
                "source_sha256 = COALESCE(excluded.source_sha256, rows.source_sha256)",
                (index, key, Status.PRESIGNED.value, thumbnail_key, source_sha256, now),
            )

    def record(self, result: RowResult) -> None:
        """Journal one finished row in its own commit (see ``record_many`` for the rules)."""
        self.record_many((result,))

    def record_many(self, results: Sequence[RowResult]) -> None:
        """Journal finished rows in one transaction: all of them or, on error, none.

        Only terminal states are accepted, and ``uploaded`` needs a ``thumbnail_key`` (``ValueError``).
        A key presigned for the row and not kept becomes an orphan (``superseded`` or ``abandoned``), as
        does the key of a ``failed`` result (``failed``). An ``uploaded`` row may only be re-recorded
        identically: anything else raises ``JournalStateError`` (a double upload or a lost key is a bug).
        """
        if not results:
            return
        for result in results:
            if not result.status.terminal:
                raise ValueError(
                    f"Row {result.index}: only finished rows are recorded, not {result.status.value!r}."
                )
            if result.status is Status.UPLOADED and not result.thumbnail_key:
                raise ValueError(f"Row {result.index} is uploaded but has no thumbnail_key.")
        lo = min(r.index for r in results)
        hi = max(r.index for r in results) + 1
        now = _now()
        with self._transaction() as conn:
            # One range read finds every row in this batch that holds a key (usually none).
            prior = {
                idx: (status, key)
                for idx, status, key in conn.execute(
                    "SELECT idx, status, thumbnail_key FROM rows WHERE idx >= ? AND idx < ? "
                    "AND status IN ('presigned', 'uploaded')",
                    (lo, hi),
                )
            }
            orphans: list[tuple[int, str, str, str]] = []
            if prior:
                for result in results:
                    orphans.extend(self._orphans_for(result, prior.get(result.index), now))
            conn.executemany(_UPSERT, (self._values(r, now) for r in results))
            if orphans:
                conn.executemany(_ORPHAN, orphans)

    @staticmethod
    def _orphans_for(
        result: RowResult, prior: tuple[str, str | None] | None, now: str
    ) -> Iterable[tuple[int, str, str, str]]:
        if prior is None:
            return ()
        status, old_key = prior
        if status == Status.UPLOADED.value:
            if result.status is Status.UPLOADED and result.thumbnail_key == old_key:
                return ()  # the same record again: harmless
            raise JournalStateError(
                f"Row {result.index} is already uploaded as {old_key}; refusing to record it again as "
                f"{result.status.value} with key {result.thumbnail_key}."
            )
        found = []
        if status == Status.PRESIGNED.value and old_key and old_key != result.thumbnail_key:
            found.append((result.index, old_key, "superseded" if result.thumbnail_key else "abandoned", now))
        if result.status is Status.FAILED and result.thumbnail_key:
            found.append((result.index, result.thumbnail_key, "failed", now))
        return found

    @staticmethod
    def _values(r: RowResult, now: str) -> tuple[object, ...]:
        return (r.index, r.key, r.status.value, *_DETAILS(r), now)

    def add_orphan(self, index: int, thumbnail_key: str, reason: str) -> None:
        """Record a key that may exist server-side but is not the row's (committed; repeats ignored)."""
        with self._transaction() as conn:
            conn.execute(_ORPHAN, (index, thumbnail_key, reason, _now()))

    def mark_orphans_from_inflight(self) -> int:
        """For a resumed run: rows left ``presigned`` go back to ``pending`` and their keys become
        orphans (``interrupted``: the PUT may or may not have happened). Returns how many rows."""
        with self._transaction() as conn:
            now = _now()
            conn.execute(
                "INSERT OR IGNORE INTO orphans (idx, thumbnail_key, reason, recorded_at) "
                "SELECT idx, thumbnail_key, 'interrupted', ? FROM rows "
                "WHERE status = 'presigned' AND thumbnail_key IS NOT NULL",
                (now,),
            )
            cursor = conn.execute(
                "UPDATE rows SET status = 'pending', thumbnail_key = NULL, updated_at = ? "
                "WHERE status = 'presigned'",
                (now,),
            )
            return cursor.rowcount
