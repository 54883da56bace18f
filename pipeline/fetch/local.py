"""Local files: the same checks and reasons as the image stage's reader (``pipeline.images.stage``).

Reasons: ``not_found`` (missing, or a path through a non-folder), ``unreadable`` (permission, a folder,
a FIFO or device, an I/O error), ``source_too_large`` (over the limit by ``stat``, or grown past it while
read). An empty file is handed on as zero bytes: the image stage rejects it ``empty_file``.
Synchronous: the ``Fetcher`` runs these in a thread.
"""

from __future__ import annotations

import os
import stat

from pipeline.fetch.outcomes import Fetched, FetchRejected, SourceStamp

__all__ = ["local_stamp", "read_local"]


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def local_stamp(path: str, max_bytes: int) -> SourceStamp | FetchRejected:
    """The file's ``size:mtime_ns`` stamp, after the checks that need no reading (exists, regular, size)."""
    try:
        st = os.stat(path)  # noqa: PTH116  # str paths: cheaper than pathlib per row
    except (FileNotFoundError, NotADirectoryError):
        return FetchRejected("not_found", f"no such file: {path}")
    except OSError as exc:
        return FetchRejected("unreadable", f"cannot access {path}: {exc.strerror or exc}")
    if stat.S_ISDIR(st.st_mode):
        return FetchRejected("unreadable", f"{path} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):  # reading a FIFO or a device could block forever
        return FetchRejected("unreadable", f"{path} is not a regular file")
    if st.st_size > max_bytes:
        return FetchRejected("source_too_large", f"{_mb(st.st_size)}; the limit for source files is {_mb(max_bytes)}")
    return SourceStamp(f"{st.st_size}:{st.st_mtime_ns}", st.st_size)


def read_local(path: str, max_bytes: int, stamp: SourceStamp) -> Fetched | FetchRejected:
    """The file's bytes (at most ``max_bytes``), stamped with ``stamp`` from ``local_stamp``."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)  # +1: notice a file that grew past the limit since stat
    except FileNotFoundError:
        return FetchRejected("not_found", f"no such file: {path}")
    except OSError as exc:
        return FetchRejected("unreadable", f"cannot read {path}: {exc.strerror or exc}")
    if len(data) > max_bytes:
        return FetchRejected("source_too_large", f"more than {_mb(max_bytes)}, the limit for source files")
    if stamp.size != len(data):  # changed between stat and read: the stamp must describe these bytes
        stamp = SourceStamp(None, len(data))
    return Fetched(data, len(data), stamp)
