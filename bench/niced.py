"""Running the ingest the way the end-to-end benchmarks measure it: the real CLI in a child process, at a lower
CPU priority than the emulator (and the S3 server) it talks to.

Why niced: the real service runs on other machines, so our CPU use never delays its arrival stamps. Here the
emulator shares two cores with the ingest (its image pool, its event loop): left at equal priority, the
emulator is sometimes not scheduled for 10 ms and then stamps a backlog of arrivals late and close together,
which reads as a window over the cap that nobody sent. The instrument must not distort what it measures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.emulator import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, DEFAULT_WORKSPACE

__all__ = ["Ingest", "ingest_niced"]


@dataclass(frozen=True)
class Ingest:
    """A finished CLI run: wall seconds, exit code, the child's CPU seconds and peak RSS, its ``run_finished``."""

    seconds: float
    exit_code: int
    cpu_s: float
    peak_rss_mb: int
    finished: dict[str, Any]


def ingest_niced(manifest: Path, endpoint: str, *args: str, env: dict[str, str] | None = None,
                 niceness: int = 10) -> Ingest:
    """``nice -n 10 python -m pipeline ingest MANIFEST --endpoint ENDPOINT ARGS`` with the emulator's key pair,
    JSON logs and no progress bar; raises when it gives no ``run_finished`` event. ``niceness=0``: not niced
    (a run with no server beside it to protect, e.g. a dry run against processes of its own, such as Ray's)."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("NCLOUD_", "THUMBNAIL_INGEST_"))}
    child_env.update(NCLOUD_ACCESS_KEY=DEFAULT_ACCESS_KEY, NCLOUD_SECRET_KEY=DEFAULT_SECRET_KEY, **(env or {}))
    nice = ["nice", "-n", str(niceness)] if niceness else []
    cmd = [*nice, sys.executable, "-m", "pipeline", "ingest", str(manifest), "--workspace",
           DEFAULT_WORKSPACE, "--endpoint", endpoint, "--no-progress", "--log-format", "json", *args]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = proc.stderr.read().splitlines()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (RUSAGE_CHILDREN mixes all children)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    finished = next((e for e in map(_event, lines) if e.get("event") == "run_finished"), None)
    if finished is None:
        raise RuntimeError(f"the ingest ended {proc.returncode} without run_finished: {lines[-5:]}")
    return Ingest(seconds, proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, finished)


def _event(line: str) -> dict[str, Any]:
    try:
        doc = json.loads(line)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
