"""``runner.pool``: a ``--processes`` pool leaves nothing behind, even when its driver is killed by SIGKILL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

DRIVER = """
import json, multiprocessing.forkserver as fs, os, sys, time
from pipeline.python_api import make_settings
from pipeline.runner.pool import make_pool
pool, _ = make_pool(make_settings(workspace="w", dry_run=True, use_processes=True, workers=2))
workers = {pool.submit(os.getpid).result() for _ in range(4)}
print(json.dumps(sorted(workers | {fs._forkserver._forkserver_pid})), flush=True)
time.sleep(600)  # killed long before
"""


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_processes_end_when_their_driver_is_killed() -> None:
    with subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True) as driver:
        assert driver.stdout is not None
        pids = json.loads(driver.stdout.readline())
        assert pids and all(_running(p) for p in pids)
        driver.kill()  # SIGKILL: the pool is never shut down
    deadline = time.monotonic() + 30  # a bound, not a measurement: they end within a second
    while any(_running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in pids if _running(p)] == []  # workers and fork server gone, nothing waits for ever
