"""The journal's tables, each format version's DDL frozen as it was written, and the migrations between them
(``PRAGMA user_version``).

Version 1 (the first release) keyed rows by their position in one manifest; version 2 keys them by the row
key (the ``id``, else the path as written), so that one journal follows a manifest through edits. A version-1
journal is upgraded in place: its rows keep their keys and remember their old position (``legacy_idx``), so a
row keyed by position can be adopted by its new key once its content is shown to be the same. Version 3
(``--attach``) adds the ``person_id`` and ``attached_at`` columns, the persons known to the run (``persons``:
target -> person id) and the attach intents (``attach_intents``: journaled before each create/add call and
removed with the call's outcome, so a killed run can reconcile the call it was making). Version 4 adds
``run_id`` and ``this_run`` (the run that last changed a row and what it did) and ``source_path`` (the path cell
the row's key was last worked on with: a known key back with another file is a changed row).

``DDL[v]`` is version ``v``'s schema as SQLite stores it in ``sqlite_master``, literal text: it never changes once
released, whatever ``result_fields.RESULT_FIELDS`` becomes. A new column is a new version: its frozen DDL and one
migration from the version before (tests/test_journal_schema.py fails until both exist). A new journal is made
from the latest DDL; upgrading any older one gives the same ``sqlite_master``, statement for statement.
"""

from __future__ import annotations

import sqlite3

from pipeline.result_fields import RESULT_FIELDS

__all__ = ["COLUMNS", "DDL", "SCHEMA_VERSION", "create", "ensure_schema"]

SCHEMA_VERSION = 4

COLUMNS: tuple[str, ...] = tuple(f.name for f in RESULT_FIELDS)
"""The ``rows`` columns the journal reads and writes after ``key``, in ``RESULT_FIELDS`` order (the table also
holds ``legacy_idx`` and ``updated_at``); the tests hold them equal to ``DDL[SCHEMA_VERSION]``'s columns."""

_META = "CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID"

_V1: tuple[str, ...] = (
    _META,
    "CREATE TABLE rows (\n"
    "    idx INTEGER PRIMARY KEY, key TEXT NOT NULL, status TEXT NOT NULL, thumbnail_key TEXT,\n"
    "    reason TEXT, detail TEXT, action TEXT, width INTEGER, height INTEGER, bytes INTEGER,\n"
    "    source_sha256 TEXT, attempts INTEGER NOT NULL DEFAULT 0, uploaded_at TEXT, duplicate_of TEXT,\n"
    "    updated_at TEXT NOT NULL\n"
    ")",
    "CREATE INDEX rows_sha256 ON rows (source_sha256, idx) WHERE source_sha256 IS NOT NULL",
    "CREATE INDEX rows_inflight ON rows (idx) WHERE status = 'presigned'",
    "CREATE TABLE orphans (\n"
    "    idx INTEGER NOT NULL, thumbnail_key TEXT NOT NULL, reason TEXT NOT NULL, recorded_at TEXT NOT NULL,\n"
    "    PRIMARY KEY (idx, thumbnail_key)\n"
    ") WITHOUT ROWID",
)

_V2_ROWS = (
    "key TEXT PRIMARY KEY, status TEXT NOT NULL, thumbnail_key TEXT, reason TEXT, detail TEXT, action TEXT, "
    "width INTEGER, height INTEGER, bytes INTEGER, source_sha256 TEXT, attempts INTEGER NOT NULL DEFAULT 0, "
    "uploaded_at TEXT, duplicate_of TEXT, source_stamp TEXT, legacy_idx INTEGER, updated_at TEXT NOT NULL"
)
_V2_INDEXES = (
    "CREATE INDEX rows_sha256 ON rows (source_sha256) WHERE source_sha256 IS NOT NULL",
    "CREATE INDEX rows_inflight ON rows (status) WHERE status = 'presigned'",
    "CREATE INDEX rows_legacy ON rows (legacy_idx) WHERE legacy_idx IS NOT NULL",
)
_V2_ORPHANS = ("CREATE TABLE orphans (key TEXT NOT NULL, thumbnail_key TEXT NOT NULL, reason TEXT NOT NULL, "
               "recorded_at TEXT NOT NULL, PRIMARY KEY (key, thumbnail_key)) WITHOUT ROWID")
_V2: tuple[str, ...] = (_META, f"CREATE TABLE rows ({_V2_ROWS}) WITHOUT ROWID", *_V2_INDEXES, _V2_ORPHANS)

# Versions 3 and 4 added their columns with ALTER TABLE, which SQLite writes at the end of the stored CREATE text.
_V3_COLUMNS = ("person_id TEXT", "attached_at TEXT")
_V3_TABLES = (
    "CREATE TABLE persons (target TEXT PRIMARY KEY, person_id TEXT NOT NULL, created INTEGER NOT NULL DEFAULT 0, "
    "recorded_at TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE attach_intents (id TEXT PRIMARY KEY, kind TEXT NOT NULL, target TEXT NOT NULL, person_id TEXT, "
    "row_keys TEXT NOT NULL, thumbnail_keys TEXT NOT NULL, count_before INTEGER NOT NULL, "
    "recorded_at TEXT NOT NULL) WITHOUT ROWID",
)
_V3: tuple[str, ...] = (
    _META,
    f"CREATE TABLE rows ({_V2_ROWS}, person_id TEXT, attached_at TEXT) WITHOUT ROWID",
    *_V2_INDEXES, _V2_ORPHANS, *_V3_TABLES,
)

_V4_COLUMNS = ("run_id TEXT", "this_run TEXT", "source_path TEXT")
_V4: tuple[str, ...] = (
    _META,
    f"CREATE TABLE rows ({_V2_ROWS}, person_id TEXT, attached_at TEXT, run_id TEXT, this_run TEXT, "
    "source_path TEXT) WITHOUT ROWID",
    *_V2_INDEXES, _V2_ORPHANS, *_V3_TABLES,
)

DDL: dict[int, tuple[str, ...]] = {1: _V1, 2: _V2, 3: _V3, 4: _V4}
"""``version -> its CREATE statements``, in order, exactly as ``sqlite_master`` holds them. Frozen: never edit a
released version's text; add the next version instead."""

_V1_COPIED = ("status, thumbnail_key, reason, detail, action, width, height, bytes, source_sha256, attempts, "
              "uploaded_at, duplicate_of, updated_at")
"""The version-1 ``rows`` columns that version 2 keeps as they were."""


def _version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version:
        return int(version)
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return 0
    if "meta" not in tables:
        raise sqlite3.DatabaseError("it holds other tables")  # someone else's database: add nothing to it
    found = conn.execute("SELECT v FROM meta WHERE k = 'schema_version'").fetchone()
    return int(found[0]) if found and str(found[0]).isdigit() else 0


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Re-key version-1 rows (by position) on their key; orphans follow their row's key."""
    conn.execute("DROP INDEX IF EXISTS rows_sha256")  # v1's index names are v2's: free them first
    conn.execute("DROP INDEX IF EXISTS rows_inflight")
    conn.execute("ALTER TABLE rows RENAME TO rows_v1")
    conn.execute("ALTER TABLE orphans RENAME TO orphans_v1")
    for statement in _V2[1:]:
        conn.execute(statement)
    # A v1 key could repeat only if the manifest changed under it; keep the latest position's record.
    conn.execute(
        f"INSERT OR REPLACE INTO rows (key, {_V1_COPIED}, legacy_idx) "  # noqa: S608 (constants)
        f"SELECT key, {_V1_COPIED}, idx FROM rows_v1 ORDER BY idx"
    )
    conn.execute(
        "INSERT OR IGNORE INTO orphans (key, thumbnail_key, reason, recorded_at) "
        "SELECT COALESCE(r.key, '#row-' || o.idx), o.thumbnail_key, o.reason, o.recorded_at "
        "FROM orphans_v1 o LEFT JOIN rows_v1 r ON r.idx = o.idx"
    )
    conn.execute("DROP TABLE rows_v1")
    conn.execute("DROP TABLE orphans_v1")
    conn.execute("DELETE FROM meta WHERE k IN ('fingerprint', 'rows', 'manifest_name', 'schema_version')")


def _add_columns(conn: sqlite3.Connection, columns: tuple[str, ...]) -> None:
    for column in columns:
        conn.execute(f"ALTER TABLE rows ADD COLUMN {column}")


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Add the attach columns and the attach tables."""
    _add_columns(conn, _V3_COLUMNS)
    for statement in _V3_TABLES:
        conn.execute(statement)


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    """Add the run columns and the source path."""
    _add_columns(conn, _V4_COLUMNS)


_MIGRATIONS = {1: _migrate_1_to_2, 2: _migrate_2_to_3, 3: _migrate_3_to_4}
"""``from version -> step``: from one frozen ``DDL`` to the next, inside the caller's transaction."""


def create(conn: sqlite3.Connection, version: int = SCHEMA_VERSION) -> None:
    """Create the tables of format ``version`` (``DDL[version]``) in an empty database and mark it with that
    version; the caller holds the transaction."""
    for statement in DDL[version]:
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {int(version)}")


def ensure_schema(conn: sqlite3.Connection) -> int:
    """Create the tables or upgrade them to ``SCHEMA_VERSION`` in one transaction; return the version found.

    Raises ``sqlite3.DatabaseError`` for a database that is not a journal, or one written by a newer release.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = version = _version(conn)
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"it was written by a newer release (format {version}; this one reads up to {SCHEMA_VERSION})"
            )
        if version == 0:
            create(conn)
        while 0 < version < SCHEMA_VERSION:
            _MIGRATIONS[version](conn)
            version += 1
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return found
