"""What a run's journal adds to its report, read without changing it (a read-only SQLite connection)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from pipeline.journal.opening import connect_read_only
from pipeline.report.records import JournalInfo

__all__ = ["read_journal"]


def read_journal(path: Path) -> JournalInfo:
    """The journal's workspace, rows per state and possible orphans; a ``JournalInfo`` with ``problem`` set
    when it is missing, locked by a running ingest, or not a journal (the report is still written)."""
    shown = str(path)
    if not Path(path).is_file():
        return JournalInfo(shown, None, None, (), 0, problem="the journal file does not exist")
    conn: sqlite3.Connection | None = None
    try:
        conn = connect_read_only(Path(path))  # never waits on a running ingest; reads a read-only mount too
        meta = dict(conn.execute("SELECT k, v FROM meta WHERE k IN ('workspace', 'created_at')").fetchall())
        states = conn.execute("SELECT status, COUNT(*) FROM rows GROUP BY status ORDER BY COUNT(*) DESC").fetchall()
        (orphans,) = conn.execute("SELECT COUNT(*) FROM orphans").fetchone()
    except sqlite3.Error as exc:
        why = ("it is in use by a running ingest" if "locked" in str(exc)
               else f"it is not a readable journal ({exc})")
        return JournalInfo(shown, None, None, (), 0, problem=why)
    finally:
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
    return JournalInfo(shown, meta.get("workspace"), meta.get("created_at"),
                       tuple((str(s), int(c)) for s, c in states), int(orphans))
