"""Test-only tools: the emulator in a process of its own (read over its JSON route, for benchmarks and load
tests), an independent recount of arrival windows, and a fake clock for deterministic timing tests.

In a thread of the measuring process the emulator would share its GIL and event loop: its arrival stamps
would lag the real arrivals and blur the sliding-window counts it is there to check.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from pipeline.emulator.child import emulator_in_child, fetch_counters

__all__ = ["FakeClock", "arrival_rate", "emulator_process", "fetch_state", "max_in_window"]


@contextlib.contextmanager
def emulator_process(*args: str, no_gc: bool = False) -> Iterator[str]:
    """``python -m pipeline.emulator ARGS`` in a child process (``emulator_in_child``: the built-in key pair,
    ended with us however we end); yields its base URL once it listens, stopped on exit. ``no_gc`` turns its
    cyclic garbage collector off (see ``emulator_in_child``)."""
    with emulator_in_child(*args, no_gc=no_gc) as emu:
        yield emu.base_url


def fetch_state(base: str, *, arrivals: bool = True) -> dict[str, Any]:
    """The counters of the emulator at ``base``, arrival times included unless told otherwise."""
    return fetch_counters(base, arrivals=arrivals, timeout=30)


def arrival_rate(arrivals: Sequence[float]) -> float:
    """Calls per second over ``arrivals`` (stamps in seconds), first to last: ``(n - 1) / span``; 0 for < 2."""
    ordered = sorted(arrivals)
    return (len(ordered) - 1) / (ordered[-1] - ordered[0]) if len(ordered) > 1 else 0.0


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
