"""The journal's tables, derived from ``models.RESULT_FIELDS``, and its migrations (``PRAGMA user_version``).

Version 1 (the first release) keyed rows by their position in one manifest; version 2 keys them by the row
key (the ``id``, else the path as written), so that one journal follows a manifest through edits. A version-1
journal is upgraded in place: its rows keep their keys and remember their old position (``legacy_idx``), so a
row keyed by position can be adopted by its new key once its content is shown to be the same. Version 3
(``--attach``) adds the ``person_id`` and ``attached_at`` columns, the persons known to the run (``persons``:
target -> person id) and the attach intents (``attach_intents``: journaled before each create/add call and
removed with the call's outcome, so a killed run can reconcile the call it was making). Version 4 adds
``run_id`` and ``this_run`` (the run that last changed a row and what it did) and ``source_path`` (the path cell
the row's key was last worked on with: a known key back with another file is a changed row).
"""

from __future__ import annotations

import sqlite3

from pipeline.models import RESULT_FIELDS

__all__ = ["COLUMNS", "SCHEMA_VERSION", "ensure_schema"]

SCHEMA_VERSION = 4

_SQL_TYPES = {"text": "TEXT", "int32": "INTEGER", "int64": "INTEGER", "timestamp": "TEXT"}
COLUMNS: tuple[str, ...] = tuple(f.name for f in RESULT_FIELDS)
"""The ``rows`` columns after ``key``, in ``RESULT_FIELDS`` order (then ``legacy_idx`` and ``updated_at``)."""


def _rows_table(name: str) -> str:
    cols = ", ".join(
        f"{f.name} {_SQL_TYPES[f.kind]}" + (" NOT NULL" if f.name == "status" else "")
        + (" NOT NULL DEFAULT 0" if f.name == "attempts" else "")
        for f in RESULT_FIELDS
    )
    return f"CREATE TABLE {name} (key TEXT PRIMARY KEY, {cols}, legacy_idx INTEGER, updated_at TEXT NOT NULL)"


_V2 = [
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID",
    _rows_table("rows").replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS") + " WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS rows_sha256 ON rows (source_sha256) WHERE source_sha256 IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS rows_inflight ON rows (status) WHERE status = 'presigned'",
    "CREATE INDEX IF NOT EXISTS rows_legacy ON rows (legacy_idx) WHERE legacy_idx IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS orphans (key TEXT NOT NULL, thumbnail_key TEXT NOT NULL, reason TEXT NOT NULL, "
    "recorded_at TEXT NOT NULL, PRIMARY KEY (key, thumbnail_key)) WITHOUT ROWID",
]


_ATTACH_COLUMNS = ("person_id", "attached_at")
_V3 = [
    *_V2,
    "CREATE TABLE IF NOT EXISTS persons (target TEXT PRIMARY KEY, person_id TEXT NOT NULL, "
    "created INTEGER NOT NULL DEFAULT 0, recorded_at TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS attach_intents (id TEXT PRIMARY KEY, kind TEXT NOT NULL, target TEXT NOT NULL, "
    "person_id TEXT, row_keys TEXT NOT NULL, thumbnail_keys TEXT NOT NULL, count_before INTEGER NOT NULL, "
    "recorded_at TEXT NOT NULL) WITHOUT ROWID",
]


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
    later = {c.split()[0] for c in _V4_COLUMNS}
    common = [c for c in COLUMNS if c != "source_stamp" and c not in _ATTACH_COLUMNS and c not in later]
    cols = ", ".join(common)
    conn.execute("DROP INDEX IF EXISTS rows_sha256")  # v1's index names are v2's: free them first
    conn.execute("DROP INDEX IF EXISTS rows_inflight")
    conn.execute("ALTER TABLE rows RENAME TO rows_v1")
    conn.execute("ALTER TABLE orphans RENAME TO orphans_v1")
    for statement in _V2[1:]:
        conn.execute(statement)
    # A v1 key could repeat only if the manifest changed under it; keep the latest position's record.
    conn.execute(
        f"INSERT OR REPLACE INTO rows (key, {cols}, legacy_idx, updated_at) "  # noqa: S608 (constants)
        f"SELECT key, {cols}, idx, updated_at FROM rows_v1 ORDER BY idx"
    )
    conn.execute(
        "INSERT OR IGNORE INTO orphans (key, thumbnail_key, reason, recorded_at) "
        "SELECT COALESCE(r.key, '#row-' || o.idx), o.thumbnail_key, o.reason, o.recorded_at "
        "FROM orphans_v1 o LEFT JOIN rows_v1 r ON r.idx = o.idx"
    )
    conn.execute("DROP TABLE rows_v1")
    conn.execute("DROP TABLE orphans_v1")
    conn.execute("DELETE FROM meta WHERE k IN ('fingerprint', 'rows', 'manifest_name', 'schema_version')")


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Add the attach columns (a v1 journal just upgraded has them already) and the attach tables."""
    have = {name for (_, name, *_rest) in conn.execute("PRAGMA table_info(rows)")}
    kinds = {f.name: _SQL_TYPES[f.kind] for f in RESULT_FIELDS}
    for column in _ATTACH_COLUMNS:
        if column not in have:
            conn.execute(f"ALTER TABLE rows ADD COLUMN {column} {kinds[column]}")
    for statement in _V3[len(_V2):]:
        conn.execute(statement)


_V4_COLUMNS = ("run_id TEXT", "this_run TEXT", "source_path TEXT")
"""Version 4's new ``rows`` columns, as written then (a later version adds its own list)."""


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    """Add the run columns and the source path (a journal just upgraded from an older version may have them)."""
    have = {name for (_, name, *_rest) in conn.execute("PRAGMA table_info(rows)")}
    for column in _V4_COLUMNS:
        if column.split()[0] not in have:
            conn.execute(f"ALTER TABLE rows ADD COLUMN {column}")


_MIGRATIONS = {1: _migrate_1_to_2, 2: _migrate_2_to_3, 3: _migrate_3_to_4}
"""``from version -> step``; each step brings the journal to the next version inside one transaction."""


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
            for statement in _V3:
                conn.execute(statement)
        while 0 < version < SCHEMA_VERSION:
            _MIGRATIONS[version](conn)
            version += 1
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return found
