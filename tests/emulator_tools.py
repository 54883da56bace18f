"""Test-only tools: the emulator in a process of its own (read over its JSON route, for benchmarks and load
tests), an independent recount of arrival windows, and a fake clock for deterministic timing tests.

In a thread of the measuring process the emulator would share its GIL and event loop: its arrival stamps
would lag the real arrivals and blur the sliding-window counts it is there to check.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["FakeClock", "emulator_process", "fetch_state", "max_in_window"]


@contextlib.contextmanager
def emulator_process(*args: str, no_gc: bool = False) -> Iterator[str]:
    """``python -m pipeline.emulator ARGS`` on a free loopback port; yields its base URL once it answers;
    stopped on exit. The caller's ``NCLOUD_*`` variables are not passed on (the default key pair is used).

    ``no_gc`` turns the cyclic garbage collector off in the emulator process: a gen-2 collection over tens of
    thousands of issued URLs pauses its loop for tens of ms and would stamp the arrivals queued meanwhile
    closer together than they were sent (the instrument must not distort what it measures).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NCLOUD_")}
    argv = ["--port", str(port), *args]
    if no_gc:
        code = f"import gc, sys; gc.disable(); from pipeline.emulator.runtime import main; sys.exit(main({argv!r}))"
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, "-m", "pipeline.emulator", *argv]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                fetch_state(base, arrivals=False)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the emulator process did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def fetch_state(base: str, *, arrivals: bool = True) -> dict[str, Any]:
    """The counters of the emulator at ``base`` (``GET /_emulator/state``, objects left out)."""
    url = f"{base}/_emulator/state?objects=0&arrivals={int(arrivals)}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        counters: dict[str, Any] = json.load(resp)["counters"]
        return counters


def max_in_window(times: Sequence[float], length: float = 1.0) -> int:
    """The most ``times`` in any half-open window ``(t - length, t]``: a recount of arrival stamps that does
    not rely on the emulator's own sliding-window counter."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - length:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


class FakeClock:
    """Time that moves only when told: ``clock()`` reads it, ``await sleep(s)`` moves it ``s`` forward (and
    yields once), ``advance(s)`` moves it from a test. Inject into limiters, the client and the emulator so
    rates, windows, pauses and expiry are checked without real time passing."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def clock(self) -> float:
        """The current fake time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and let other tasks run once."""
        self.advance(seconds)
        await asyncio.sleep(0)
