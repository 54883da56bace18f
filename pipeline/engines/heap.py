"""Keep the memory one image frees for the next one, in a process whose main thread prepares images (a
``--processes`` worker, a Ray worker).

glibc's ``malloc`` serves a block of 128 KiB or more (its dynamic threshold rises to at most 32 MiB) with a
fresh ``mmap`` and unmaps it when freed, and gives the top of its heap back to the kernel past 128 KiB. An image
worker allocates and frees the same ~80 MB for every 12 MP photo (decoded planes, DCT coefficients, encoder
buffers), so each photo faulted its memory in again, zeroed, a page at a time: 19,700 minor faults and ~40 ms of
kernel time a turned 12 MP photo, about a third of its cost. Served from the heap and kept, the pages are
reused. Threads of the local pool are left alone: each gets a malloc arena of at most 64 MiB (so the faults stay)
and measured no faster; changing the driver's allocator (a user's notebook kernel) would buy nothing.
"""

from __future__ import annotations

import ctypes
import threading

__all__ = ["KEEP_BYTES", "SERVE_BYTES", "keep_freed_memory"]

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
SERVE_BYTES = 32 << 20
"""Blocks up to this size come from the heap (glibc's largest ``M_MMAP_THRESHOLD`` on 64-bit systems)."""
KEEP_BYTES = 256 << 20
"""Freed heap kept for reuse, at most (``M_TRIM_THRESHOLD``): two 12 MP photos' worth, well under a worker's peak
for a 50 MP one."""

_decided = False
_kept = False


def keep_freed_memory() -> bool:
    """On the main thread, once per process: set glibc's ``M_MMAP_THRESHOLD`` to ``SERVE_BYTES`` and
    ``M_TRIM_THRESHOLD`` to ``KEEP_BYTES``. Returns whether this process keeps its freed memory (``False`` on
    another C library, or when the first call came from another thread: then nothing was changed). Cheap after
    the first call: ``work`` calls it for every job."""
    global _decided, _kept
    if _decided:
        return _kept
    _decided = True
    if threading.current_thread() is not threading.main_thread():
        return False
    try:  # the process's own symbols, C library included (find_library would run ldconfig in a subprocess)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a C library without mallopt (musl, macOS)
        return False
    # Both, or the trim alone would freeze the mmap threshold at its 128 KiB start (glibc's no_dyn_threshold).
    _kept = bool(mallopt(M_MMAP_THRESHOLD, SERVE_BYTES) and mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
    return _kept
