"""Where prepare runs on one machine: the thread or process pool, sized by ``--workers``; and the run id."""

from __future__ import annotations

import multiprocessing
import os
import secrets
import select
import signal
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime, timezone

from pipeline.config import Settings

__all__ = ["make_pool", "new_run_id"]


def _worker_start(driver: int) -> None:
    """A pool process's start: it leaves Ctrl-C to the driver (else one Ctrl-C in a terminal counts once per
    process), and ends when the driver ends, however it ends. A driver killed by SIGKILL cannot shut its pool
    down, and nothing else would end the workers: each holds the fork server's liveness pipe open (the fork
    server hands it to every process it starts), so the fork server waits for them and they for their next
    image, for ever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_end_with, args=(driver,), name="driver-watch", daemon=True).start()


def _end_with(driver: int) -> None:
    """Return never: wait for the process ``driver`` to end (a pidfd where the kernel has them, else a look
    every second), then end this process at once (its image is nobody's now)."""
    try:
        handle = os.pidfd_open(driver)
    except (AttributeError, OSError):  # not Linux, an old kernel, or the driver already gone
        while _alive(driver):
            time.sleep(1.0)
    else:
        select.select([handle], [], [])  # readable once the process has ended
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or someone else's process took its number
        return False
    return True


def new_run_id() -> str:
    """A run id: its UTC start to the second and 6 random hex digits (sorts by time; unique in practice)."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def make_pool(settings: Settings) -> tuple[Executor, int]:
    """The image pool and its size: ``--workers`` (default one per CPU) threads, or processes with
    ``--processes`` (which leave Ctrl-C to this process, and end when it ends, ``_worker_start``). Processes
    start from a fork server, not by forking this one: a forked worker would inherit the journal's lock (an
    ``flock`` lives as long as any copy of its descriptor) and every thread's state, and one left behind would
    hold the journal for ever."""
    size = settings.workers or os.cpu_count() or 2
    if settings.use_processes:
        context = multiprocessing.get_context("forkserver")
        return ProcessPoolExecutor(max_workers=size, mp_context=context, initializer=_worker_start,
                                   initargs=(os.getpid(),)), size
    return ThreadPoolExecutor(max_workers=size, thread_name_prefix="prepare"), size
