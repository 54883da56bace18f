"""Strict client-side rate limiting: even pacing plus a hard sliding-window guard (AIMD lives in ``aimd``).

Why not a plain ``aiolimiter.AsyncLimiter``: ``AsyncLimiter(50, 1)`` is a leaky bucket of capacity 50, so
it lets ~99 calls through in the first second (a full bucket plus what leaks meanwhile).
``AsyncLimiter(1, 1/50)`` spaces calls at least 20 ms apart, which keeps every window of our *sends* at
<= 50, but the server counts *arrivals*, and an arrival can trail its send by anything from microseconds
to tens of ms (a busy server loop, a queue on the path, a stalled machine): two sends 1.001 s apart can
arrive 0.99 s apart. ``StrictLimiter`` therefore guards the window on what it knows of each arrival: a call
leaves the window ``window`` after its send plus the most its arrival can have lagged -- its round trip when
that is short (a proof: the arrival came before the answer), else the margin plus how much longer than
usual its round trip took (see ``slots``). The guard alone holds the cap; calls are paced on a fixed grid
at the cap so that they stay evenly spread, and the guard's waits then set the steady rate: ``limit`` per
``window`` plus a typical round trip (49.9/s for 50/s on a loopback, 49.6/s with an 8 ms margin on a path
whose round trips are all longer than the margin).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

from pipeline.client.slots import RoundTrips, Slot

__all__ = ["Clock", "Sleep", "Slot", "StrictLimiter"]

Clock = Callable[[], float]
"""Monotonic seconds (``time.monotonic`` unless a test injects its own)."""
Sleep = Callable[[float], Awaitable[None]]
"""Waits that many seconds of the matching clock (``asyncio.sleep`` unless a test injects its own)."""

_SPIN = 0.0012
"""Seconds before a deadline at which ``acquire`` stops sleeping on a timer and yields instead."""

FLOOR = 0.001
"""Seconds every call is kept in the window beyond ``window`` at least: the server's window is half-open,
``(t - window, t]``, and clocks read in steps."""

_LOOK_AGAIN = 0.002
"""Seconds after which the guard looks again when the window is full of calls whose exit is not known yet
(not sent, or sent and not answered)."""


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class StrictLimiter:
    """At most ``limit`` acquisitions in any sliding window of ``window`` seconds, evenly paced.

    ``rate`` is calls per ``period`` seconds (``rate=50, period=1``; ``rate=1000, period=60``); 0 means
    unlimited (``acquire`` never waits). A rate below one call per period allows one call per
    ``period / rate`` seconds. Acquisitions are served first come, first served (``asyncio.Lock`` is fair).

    Promise: the server never counts more than ``limit`` of our calls in any half-open window
    ``(t - window, t]`` of its arrivals, whatever the lag between a send and its arrival, as long as each
    call's slot is dated by ``Slot.mark_sent`` (its bytes go out) and ``Slot.mark_answered`` (its answer
    comes back, or the call ends). A slot not yet sent, or sent and not yet answered, counts as in the
    window. An answered call leaves it ``window`` after its send plus the smaller of two bounds on how late
    the server can have counted it: its round trip (the arrival came before the answer: a proof), and
    ``margin`` plus how much longer than the shortest recent round trip it took (which holds while the one-way
    delays spread by no more than that: the assumption for a far server); never less than ``FLOOR``. While
    the shortest recent round trip is within ``margin`` (a near server) the first bound is always the smaller,
    so the promise is proven for any delays. A slot of ``acquire`` (no answer tracked) leaves the window
    ``window + margin`` after its send. Times are read from ``clock`` (default ``time.monotonic``) and waits
    use ``sleep`` (default ``asyncio.sleep``): tests inject a fake pair and check windows without real time
    passing. ``set_rate`` (AIMD) only slows the pacing; it never raises the hard limit.

    ``pace=False`` drops the even pacing and keeps only the window guard: calls go as fast as they come
    while the window has room (the status cap, 1,000 in any 60 s, is then used fully from the first call).

    Every wait ends at once when the waiting task is cancelled, or when ``close()`` is called (``take``
    then returns ``None``); a cancelled waiter never holds the limiter.
    """

    def __init__(
        self,
        rate: float,
        period: float,
        *,
        margin: float = 0.0,
        pace: bool = True,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate < 0 or period <= 0:
            raise ValueError("rate must be >= 0 and period > 0")
        self.configured_rate = rate
        self.period = period
        if rate == 0:
            self.limit, self.window = 0, period
        elif rate >= 1:
            self.limit, self.window = math.floor(rate), period
        else:
            self.limit, self.window = 1, period / rate
        self.margin = margin
        self.floor = FLOOR
        self.pace = pace
        self._round_trips = RoundTrips()
        self._interval = 0.0
        self._rate = 0.0
        self.set_rate(rate)
        self._clock = clock
        self._sleep = sleep
        # The spin only corrects the real loop's late timers; an injected sleep is exact.
        self._spin = _SPIN if sleep is asyncio.sleep else 0.0
        self._slots: deque[Slot] = deque()
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._lock = asyncio.Lock()
        self._closed = asyncio.Event()
        self._waiters: set[asyncio.Future[None]] = set()

    def close(self) -> None:
        """End every wait now and refuse further slots (``take`` returns ``None``): a fatal stop."""
        self._closed.set()
        for waiter in list(self._waiters):
            _resolve(waiter)

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed.is_set()

    def now(self) -> float:
        """The limiter's clock."""
        return self._clock()

    async def _nap(self, seconds: float) -> None:
        """Sleep ``seconds`` (on the injected sleep), or less if ``close()`` is called meanwhile."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        if self._sleep is asyncio.sleep:
            # The hot path (every paced slot): a timer on a future that close() can also resolve, no tasks.
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            timer = loop.call_later(seconds, _resolve, waiter)
            self._waiters.add(waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiters.discard(waiter)
            return
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        closer = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait((sleeper, closer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            closer.cancel()

    @property
    def unlimited(self) -> bool:
        """Whether this limiter lets everything through (rate 0)."""
        return self.limit == 0

    @property
    def rate(self) -> float:
        """The rate asked for by ``set_rate`` in calls per ``period`` (the configured rate until AIMD lowers it).

        The pacing grid never runs faster than ``limit`` per ``window``; the guard then holds each call until
        its predecessor ``limit`` places back has left the window, which sets the rate actually reached."""
        return self._rate

    def set_rate(self, rate: float) -> None:
        """Pace at ``rate`` calls per ``period`` from the next slot on (clamped to the configured rate)."""
        if self.unlimited or not self.pace:
            return
        rate = min(max(rate, 1e-6), self.configured_rate)
        self._rate = rate
        self._interval = max(self.period / rate, self.window / self.limit)

    def widen_margin(self, step: float, ceiling: float) -> None:
        """Add ``step`` seconds to the margin and to the floor, each up to ``ceiling``: a 429 from a server we
        kept under its cap means it counts calls later (or otherwise) than our bounds allow for, so every
        call from now on stays that much longer in the window. Neither shrinks back in a run."""
        if self.unlimited:
            return
        self.margin = min(ceiling, self.margin + step)
        self.floor = min(ceiling, self.floor + step)

    def pause_until(self, deadline: float) -> None:
        """Let no call through before ``deadline`` (seconds of the limiter's clock), e.g. a Retry-After."""
        self._paused_until = max(self._paused_until, deadline)

    @property
    def paused_until(self) -> float:
        """The clock time before which no call goes through (0 when never paused)."""
        return self._paused_until

    def leaves_at(self, slot: Slot) -> float | None:
        """When ``slot`` stops counting in the window; ``None`` while that is unknown (the call has not gone
        out, or has gone out and is waiting for its answer: the server may count it at any moment)."""
        if not slot.sent:
            return None
        if slot.book is None:
            lag = self.margin
        elif not slot.answered:
            return None
        else:
            # Arrival <= answer, so ``rtt`` bounds the lag; on a long path the spread of the one-way delay
            # does, which is at most the margin plus the excess over the path's shortest round trip.
            lag = min(slot.rtt, self.margin + slot.excess)
        return slot.t + self.window + max(self.floor, lag)

    def _window_ready(self, now: float) -> float:
        """The earliest time the window has room for one more send (``now`` if it has room already)."""
        kept: deque[Slot] = deque()
        exits: list[float] = []
        unknown = 0
        for slot in self._slots:  # slots that left the window never count again
            leaves = self.leaves_at(slot)
            if leaves is None:
                unknown += 1
                kept.append(slot)
            elif leaves > now:
                exits.append(leaves)
                kept.append(slot)
        self._slots = kept
        counted = len(exits) + unknown
        if counted < self.limit:
            return now
        excess = counted - self.limit + 1  # how many must leave the window before one more fits
        if excess > len(exits):
            return now + _LOOK_AGAIN  # waiting on calls whose exit is not known yet
        exits.sort()
        return exits[excess - 1]

    async def acquire(self, abort: Callable[[], bool] | None = None) -> bool:
        """Wait for a slot and take it, counting the send as happening now; ``False`` if ``abort`` fired.

        For callers that send at once and report nothing back: the server is assumed to count the call
        within ``margin`` of now. A caller that may wait before sending, or sees the answer, uses ``take``."""
        slot = await self.take(abort, track=False)
        if slot is None:
            return False
        slot.mark_sent()
        return True

    async def take(self, abort: Callable[[], bool] | None = None, *, track: bool = True) -> Slot | None:
        """Wait for a slot and return it. The caller calls ``mark_sent()`` on it when its request goes out
        and ``mark_answered()`` when the answer comes back or the call ends -- without fail (a ``finally``):
        until then the slot holds its place in the window. ``track=False``: no answer will be reported.

        ``abort`` is polled after every wait: when it returns true the call gives up without taking a slot
        and ``None`` is returned; so it is after ``close()``, which also ends a wait in progress.
        """
        book = self._round_trips if track else None
        if self.unlimited and self._paused_until == 0.0:
            stop = self.closed or (abort is not None and abort())
            return None if stop else Slot(self._clock(), self._clock, book)
        async with self._lock:
            entered = self._clock()
            planned = max(self._next_slot, self._paused_until, entered)  # this slot's place on the grid
            while True:
                if self.closed or (abort is not None and abort()):
                    return None
                now = self._clock()
                ready = max(planned, self._paused_until)
                if self.limit:
                    ready = max(ready, self._window_ready(now))
                if ready <= now:
                    break
                # The loop wakes timers up to ~1 ms late (epoll rounds its timeout up to whole ms); every late
                # wake pushes the window guard's next deadline back, so sleep to ~1 ms short of the deadline
                # and cover the rest with zero-length yields (other tasks still run meanwhile).
                wait = ready - now
                await self._nap(wait - self._spin if wait > self._spin else 0)
            slot = Slot(now, self._clock, book)
            if self.limit:
                self._slots.append(slot)
            # The next slot follows this slot's grid time, not the late wake-up nor the guard's wait: the
            # grid only spreads calls evenly, the guard above bounds every window.
            self._next_slot = max(planned, self._paused_until) + self._interval
            return slot

    def recorded(self) -> list[float]:
        """The send times of the slots still remembered, in the order taken; for tests."""
        return [s.t for s in self._slots]
