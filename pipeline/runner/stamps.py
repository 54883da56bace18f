"""The plan's stamps of local sources: ``size:mtime_ns`` for every row of a batch, each file stat'ed once a run
(by folder handle, remembered across batches), and which sources are missing altogether."""

from __future__ import annotations

import os

from pipeline.models import Row
from pipeline.runner.plan import stamp_text

__all__ = ["SEEN_MAX", "stat_rows"]


def _absent(path: str) -> bool | None:
    """True when nothing is at ``path`` (nor is its folder there), False when something is (a dangling symlink
    included), None when the system will not say (a name too long, no permission): the image stage then says
    precisely what is wrong."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except (OSError, ValueError):
        return None
    return False


_O_PATH = getattr(os, "O_PATH", None)  # Linux: a folder handle that needs no read permission


class _Folders:
    """The folders of one batch, each looked up once: a handle to stat its files by name (``dir_fd``: the
    kernel does not walk the folder's path again for each file, a third of a stat's cost), or ``True`` when
    the folder is not there (its rows are missing, at one system call per folder), or ``None`` (stat by the
    full path: no handle could be had, or the platform has no ``O_PATH``)."""

    def __init__(self) -> None:
        self.known: dict[str, int | bool | None] = {}

    def __enter__(self) -> _Folders:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self.known.values():
            if type(fd) is int:
                os.close(fd)

    def of(self, folder: str) -> int | bool | None:
        if folder in self.known:
            return self.known[folder]
        found: int | bool | None = None
        if _O_PATH is not None:
            try:
                found = os.open(folder or ".", _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except (FileNotFoundError, NotADirectoryError):
                found = True if _absent(folder) else None  # a symlink to a file names no folder either
            except (OSError, ValueError):
                found = None
        elif _absent(folder):
            found = True
        self.known[folder] = found
        return found


def _stamp_in(folder: int | bool | None, text: str) -> tuple[str | None, bool]:
    """A file's stamp and whether it is missing altogether, given its folder's handle (``_Folders.of``)."""
    if folder is True:
        return None, True
    try:
        # str and a folder handle: cheaper per row than pathlib, and a million rows add up.
        st = os.stat(os.path.basename(text), dir_fd=folder) if type(folder) is int else os.stat(text)  # noqa: PTH116, PTH119
    except (FileNotFoundError, NotADirectoryError):
        return None, _absent(text) is True
    except (OSError, ValueError):
        return None, False
    return stamp_text(st), False


SEEN_MAX = 100_000
"""Files whose stamps the plan remembers at most (about 15 MB)."""


def stat_rows(rows: tuple[Row, ...], seen: dict[str, tuple[str | None, bool]] | None = None,
               ) -> tuple[list[str | None], list[bool]]:
    """Each row's source stamp (``size:mtime_ns``, as ``plan.stamp_of`` gives it), and whether its source is
    missing altogether (rejected without the pool).

    A folder is looked up once per batch, not once per row (``_Folders``): a manifest whose paths are relative
    to the wrong folder costs one system call per folder. A file already in ``seen`` (or named by several rows
    of the batch) is not stat'ed again; the files stat'ed are added to it."""
    if seen is None:
        seen = {}
    stamps: list[str | None] = []
    missing: list[bool] = []
    with _Folders() as folders:
        for row in rows:
            text = row.source
            if text is None:
                stamps.append(None)
                missing.append(False)
                continue
            known = seen.get(text)
            if known is None:
                folder = os.path.dirname(text)  # noqa: PTH120  # str: cheaper per row than PurePath
                known = seen[text] = _stamp_in(folders.of(folder), text)
            stamps.append(known[0])
            missing.append(known[1])
    return stamps, missing
