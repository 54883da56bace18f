"""Who holds a journal: an OS lock (``flock``) on the sidecar file ``<journal>.lock``.

One run at a time works on a journal (two would each upload the other's pending rows). The lock is the
kernel's: it dies with its process, so the lock file a killed run leaves behind holds nobody. SQLite itself
runs in plain WAL mode, so a dry run or a report reads a consistent snapshot without waiting on the run. The
lock file holds a small JSON of its holder (pid, host, since when, its command) for the sentence a second run
prints; never a URL's query or any argument past the manifest.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from pipeline.errors import ConfigError, JournalBusyError

__all__ = ["JournalLock", "lock_path", "read_only_error", "waiting"]

T = TypeVar("T")
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def lock_path(journal: Path) -> Path:
    """The sidecar lock file of ``journal``: ``<journal>.lock`` beside it."""
    return journal.with_name(journal.name + ".lock")


def read_only_error(journal: Path) -> ConfigError:
    """The one sentence for a real run whose journal (its file or its folder) cannot be written."""
    return ConfigError(f"The journal {journal} is on a read-only file or folder: a real run records every step "
                       "in it, so make it writable or use another --journal path (a --dry-run can read it as is).")


def _command() -> str:
    """What the holder runs, for a waiting run's sentence: ``thumbnail-ingest ingest <manifest>`` from the
    command line, else ``python api``. URL queries (a presigned manifest's credentials) are cut."""
    argv = sys.argv
    first = Path(argv[0]) if argv and argv[0] else Path()
    if first.name == "thumbnail-ingest" or (first.name == "__main__.py" and first.parent.name == "pipeline"):
        return " ".join(["thumbnail-ingest", *(a.split("?", 1)[0] for a in argv[1:3])])
    return "python api"


def _holder_text(path: Path) -> str:
    """``run pid 1234 on host h since <UTC> (<command>)`` from the lock file, or a plainer phrase when the
    holder has not written it yet (or wrote something else)."""
    try:
        facts = json.loads(path.read_text(encoding="utf-8"))
        return (f"run pid {int(facts['pid'])} on host {facts['host']} since {facts['started_at']} "
                f"({facts['command']})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another run"


class JournalLock:
    """This process's hold on a journal; ``release()`` (idempotent) lets the next run in."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def take(cls, journal: Path) -> JournalLock:
        """Take the lock of ``journal`` now (never waits). Raises ``JournalBusyError`` naming the holder when
        another process holds it, ``ConfigError`` when the folder is read-only or cannot hold locks."""
        path = lock_path(journal)
        try:
            journal.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            if exc.errno in _READ_ONLY:
                raise read_only_error(journal) from exc
            raise ConfigError(f"The journal {journal} cannot be locked ({exc.strerror}); use another --journal "
                              "path.") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise JournalBusyError(
                    f"The journal {journal} is held by {_holder_text(path)}; it is still going: try again "
                    "later, or use another --journal.") from None
            raise ConfigError(f"The journal {journal} cannot be locked on this file system ({exc.strerror}); "
                              "use a --journal path on a local disk.") from exc
        facts = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                 "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")}
        with contextlib.suppress(OSError):  # who holds it is a courtesy: the lock itself is what counts
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(facts).encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        """Empty the holder facts and let go of the lock. The file stays: removing it could let two runs
        each lock a different file of the same name."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the last descriptor releases the flock


async def waiting(attempt: Callable[[], T], wait: float, *, poll: float = 0.25,
                  clock: Callable[[], float] = time.monotonic) -> T:
    """``attempt()``, tried again every ``poll`` seconds while it raises ``JournalBusyError``, for at most
    ``wait`` seconds (0: once); then that error. The sleep is the event loop's, so a signal or a cancelled
    cell stops the wait at once."""
    deadline = clock() + max(wait, 0.0)
    while True:
        try:
            return attempt()
        except JournalBusyError:
            left = deadline - clock()
            if left <= 0:
                raise
            await asyncio.sleep(min(poll, left))
