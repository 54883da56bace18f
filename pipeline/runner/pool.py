"""Where prepare runs on one machine: the thread or process pool, sized by ``--workers``; and the run id."""

from __future__ import annotations

import multiprocessing
import os
import secrets
import signal
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime, timezone

from pipeline.config import Settings

__all__ = ["make_pool", "new_run_id"]


def _ignore_sigint() -> None:
    """Pool processes leave Ctrl-C to the parent (else one Ctrl-C in a terminal counts once per process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def new_run_id() -> str:
    """A run id: its UTC start to the second and 6 random hex digits (sorts by time; unique in practice)."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def make_pool(settings: Settings) -> tuple[Executor, int]:
    """The image pool and its size: ``--workers`` (default one per CPU) threads, or processes with
    ``--processes`` (which leave Ctrl-C to this process). Processes start from a fork server, not by forking
    this one: a forked worker would inherit the journal's lock (an ``flock`` lives as long as any copy of its
    descriptor) and every thread's state, and one left behind would hold the journal for ever."""
    size = settings.workers or os.cpu_count() or 2
    if settings.use_processes:
        context = multiprocessing.get_context("forkserver")
        return ProcessPoolExecutor(max_workers=size, mp_context=context, initializer=_ignore_sigint), size
    return ThreadPoolExecutor(max_workers=size, thread_name_prefix="prepare"), size
