"""Opening a journal file: connect, lock, create or upgrade its tables, check its workspace; and the private
copy a dry run works on. ``Journal.open`` and ``Journal.scratch`` are the public doors."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from pipeline.errors import ConfigError, JournalMismatchError
from pipeline.journal.schema import ensure_schema

__all__ = ["connect", "copy_for_dry_run", "now_text"]


def now_text() -> str:
    """The current UTC time as the journal stores it (ISO 8601, milliseconds, ``Z``)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def connect(path: Path, workspace: str) -> tuple[sqlite3.Connection, bool, int]:
    """Open (creating or upgrading) the journal at ``path`` for ``workspace`` and lock it; return the
    connection, whether the journal was created now, and the format version found (``ensure_schema``).

    Raises ``JournalMismatchError`` when it belongs to another workspace, ``ConfigError`` when the file is
    not a journal, is newer than this release, or another run holds it.
    """
    path = Path(path)
    conn: sqlite3.Connection | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread off: the results are written from a worker thread once the stages are done;
        # the journal is still used by one thread at a time.
        conn = sqlite3.connect(path, isolation_level=None, timeout=0.5, check_same_thread=False)
        # EXCLUSIVE: the first write takes a lock this connection keeps until close, so two runs can
        # never work on one journal (each would upload the other's pending rows).
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: survives process death, cheap commits
        found = ensure_schema(conn)
        conn.execute("BEGIN IMMEDIATE")
        meta = dict(conn.execute("SELECT k, v FROM meta").fetchall())
        created = "workspace" not in meta
        if created:
            conn.executemany("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)",
                             [("workspace", workspace), ("created_at", now_text())])
            meta["workspace"] = workspace
        elif meta["workspace"] != workspace and not _any_key(conn):
            # Nothing was ever presigned under the old name (a mistyped --workspace stopped at its first
            # call): no key is tied to it, so the corrected run may adopt the journal.
            conn.execute("UPDATE meta SET v = ? WHERE k = 'workspace'", (workspace,))
            meta["workspace"] = workspace
        conn.execute("COMMIT")
    except (sqlite3.Error, OSError) as exc:
        if conn is not None:
            conn.close()
        if "locked" in str(exc):
            hint = ("is in use by another run or program (a sqlite3 shell counts); wait for it to end "
                    "or use another --journal path.")
        else:
            hint = f"is not a usable journal ({exc}); use another --journal path."
        raise ConfigError(f"The journal {path} {hint}") from exc
    if meta["workspace"] != workspace:
        conn.close()
        raise JournalMismatchError(
            f"The journal {path} belongs to workspace {meta['workspace']!r}, not {workspace!r}: its keys "
            f"exist only there. Use --workspace {meta['workspace']} or another --journal path."
        )
    return conn, created, found


def copy_for_dry_run(source: Path | None, dest: Path) -> None:
    """Copy the journal at ``source`` (when it exists) to ``dest`` with SQLite's backup API, reading the
    source read-only; ``ConfigError`` when it cannot be read."""
    if source is not None and Path(source).exists():
        try:
            src = sqlite3.connect(f"{Path(source).absolute().as_uri()}?mode=ro", uri=True, timeout=0.5)
            try:
                with sqlite3.connect(dest) as copy:
                    src.backup(copy)
            finally:
                src.close()
        except sqlite3.Error as exc:
            raise ConfigError(f"The journal {source} cannot be read for a dry run ({exc}).") from exc


def _any_key(conn: sqlite3.Connection) -> bool:
    """Whether any row or orphan holds a thumbnail key (one issued under the journal's workspace)."""
    row = conn.execute(
        "SELECT EXISTS(SELECT 1 FROM rows WHERE thumbnail_key IS NOT NULL) OR EXISTS(SELECT 1 FROM orphans)"
    ).fetchone()
    return bool(row[0])
