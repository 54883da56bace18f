"""Opening a journal file: connect, check it is intact and holds only known states, create or upgrade its
tables, check its workspace; the read-only connection a dry run and a report use; and the private copy a dry
run works on. ``Journal.open`` (which also takes the lock, ``lock.py``) and ``Journal.scratch`` are the public
doors."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from pathlib import Path

from pipeline.clock import now_text
from pipeline.errors import ConfigError, JournalMismatchError
from pipeline.journal.lock import read_only_error
from pipeline.journal.schema import ensure_schema
from pipeline.models import Status

__all__ = ["connect", "connect_read_only", "copy_for_dry_run", "known_intact", "note_intact", "now_text"]


def connect(path: Path, workspace: str) -> tuple[sqlite3.Connection, bool, int]:
    """Open (creating or upgrading) the journal at ``path`` for ``workspace``; return the connection, whether
    the journal was created now, and the format version found (``ensure_schema``). Plain WAL: the caller
    holds the run's exclusivity (``lock.JournalLock``), and readers (a dry run, a report) never wait.

    Raises ``JournalMismatchError`` when it belongs to another workspace, ``ConfigError`` (one sentence) when
    the file is not a journal, is damaged, holds a state this release never writes, is newer than this
    release, is read-only, or another program holds SQLite's lock.
    """
    path = Path(path)
    conn: sqlite3.Connection | None = None
    if path.exists() and not os.access(path, os.W_OK):
        raise read_only_error(path)
    try:
        # check_same_thread off: the results are written from a worker thread once the stages are done;
        # the journal is still used by one thread at a time.
        unchanged = known_intact(path)  # before connecting: a connection makes the WAL files appear
        conn = sqlite3.connect(path, isolation_level=None, timeout=0.5, check_same_thread=False)
        if not unchanged:
            _check_intact(conn, path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: survives process death, cheap commits
        found = ensure_schema(conn)
        if not unchanged:  # a file as a run of this release closed it holds no state this release never writes
            _check_states(conn, path)
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
    except (sqlite3.Error, OSError, ConfigError) as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, ConfigError):
            raise
        if "readonly" in str(exc) or getattr(exc, "errno", None) in (errno.EROFS, errno.EACCES):
            raise read_only_error(path) from exc
        if "locked" in str(exc):
            hint = ("is in use by another program (a sqlite3 shell writing to it counts); wait for it to end "
                    "or use another --journal path.")
        elif _is_damage(exc):
            raise _damaged(path, f"or not a usable journal ({exc})") from exc
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


_STATES = ",".join(sorted(s.value for s in Status))
"""The row states this release writes, noted with the stamp: a note left by a release that writes others (a
newer one) does not spare this one the states check."""


def _file_stamp(path: Path) -> str | None:
    """``size:mtime_ns`` of the journal's file and the states this release writes, or ``None`` when it cannot be
    stat'ed."""
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns} {_STATES}"


def _checked_note(path: Path) -> Path:
    return path.with_name(path.name + ".checked")


def known_intact(path: Path) -> bool:
    """Whether the journal's file is exactly as a run left it when it closed it cleanly (its stamp noted then,
    no WAL left over, by a release writing the same states): then ``quick_check`` (a pass over every page: 0.5 s
    a 100,000 rows, most of a nightly no-op's cost) and the states check (another pass) are not needed again.
    A file changed since (a copy, a page overwritten, a crash) is checked."""
    stamp = _file_stamp(path)
    if stamp is None or path.with_name(path.name + "-wal").exists():
        return False
    try:
        return _checked_note(path).read_text(encoding="ascii").strip() == stamp
    except (OSError, UnicodeDecodeError):
        return False


def note_intact(path: Path) -> None:
    """Note the stamp of a journal just closed cleanly by a run that found it intact (best effort)."""
    stamp = _file_stamp(path)
    if stamp is not None and not path.with_name(path.name + "-wal").exists():
        with contextlib.suppress(OSError):
            _checked_note(path).write_text(stamp + "\n", encoding="ascii")


def _check_intact(conn: sqlite3.Connection, path: Path) -> None:
    """``ConfigError`` when SQLite's ``quick_check`` finds damage (a page overwritten, a truncated file):
    found here, before any upload, not as a traceback in the middle of a run. One pass over the pages."""
    problems = [str(r[0]) for r in conn.execute("PRAGMA quick_check(3)").fetchall()]
    if problems and problems != ["ok"]:
        raise _damaged(path, f"({'; '.join(problems)[:200]})")


def _is_damage(exc: BaseException) -> bool:
    """SQLite's "malformed", "not a database" and the like (``DatabaseError``), not a lock or an I/O error."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


def _damaged(path: Path, detail: str) -> ConfigError:
    return ConfigError(f"The journal {path} is damaged {detail}: restore it from a backup, or use another "
                       "--journal path (a new journal uploads again what it does not know).")


def _check_states(conn: sqlite3.Connection, path: Path) -> None:
    """``ConfigError`` when a row holds a state this release never writes (another program edited the file,
    or a newer release wrote it): every later step would misread it."""
    known = {s.value for s in Status}
    strange = sorted(str(s) for (s,) in conn.execute("SELECT DISTINCT status FROM rows") if s not in known)
    if strange:
        shown = ", ".join(repr(s) for s in strange[:5])
        raise ConfigError(f"The journal {path} holds row states this release never writes ({shown}): it was "
                          "edited by another program or written by a newer release; use that release, or another "
                          "--journal path.")


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to the journal at ``path`` that never waits on a run writing it (WAL). On a
    read-only mount, where SQLite cannot create the WAL index beside it, the file is read as immutable (what a
    run committed and checkpointed is what it reads). Raises ``sqlite3.Error``."""
    uri = Path(path).absolute().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=0.5)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if "unable to open" not in str(exc) and "readonly" not in str(exc):
            raise
    conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, timeout=0.5)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def copy_for_dry_run(source: Path | None, dest: Path) -> None:
    """Copy the journal at ``source`` (when it exists) to ``dest`` with SQLite's backup API: a consistent
    snapshot, read-only, at once even while a run writes it, and from a read-only mount too (``connect_read_only``);
    ``ConfigError`` when it cannot be read."""
    if source is not None and Path(source).exists():
        try:
            src = connect_read_only(Path(source))
            try:
                with contextlib.closing(sqlite3.connect(dest)) as copy:
                    src.backup(copy)
            finally:
                src.close()
        except sqlite3.Error as exc:
            if _is_damage(exc):
                raise _damaged(Path(source), f"({exc})") from exc
            raise ConfigError(f"The journal {source} cannot be read for a dry run ({exc}).") from exc


def _any_key(conn: sqlite3.Connection) -> bool:
    """Whether any row or orphan holds a thumbnail key (one issued under the journal's workspace)."""
    row = conn.execute(
        "SELECT EXISTS(SELECT 1 FROM rows WHERE thumbnail_key IS NOT NULL) OR EXISTS(SELECT 1 FROM orphans)"
    ).fetchone()
    return bool(row[0])
