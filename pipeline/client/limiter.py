"""Strict client-side rate limiting: even pacing plus a hard sliding-window guard, and AIMD on top.

Why not a plain ``aiolimiter.AsyncLimiter``: ``AsyncLimiter(50, 1)`` is a leaky bucket of capacity 50, so
it lets ~99 calls through in the first second (a full bucket plus what leaks meanwhile).
``AsyncLimiter(1, 1/50)`` spaces calls at least 20 ms apart, which does keep every sliding 1 s window
at <= 50 (51 calls span >= 1 s), but with no headroom at all, and each gap is measured from the previous
call's *late* wake-up (the loop wakes timers up to ~1 ms late), so lateness accumulates and the achieved
rate drops below the cap. ``StrictLimiter`` paces on a fixed grid (lateness is not carried forward) and,
independently, refuses a call while the last ``limit`` recorded sends all lie within ``window + margin`` of
now. The guard alone guarantees the cap; the pacing only keeps calls evenly spread inside it.

The grid runs at the guard's own capacity, ``limit`` per ``window + margin`` (49.6/s for 50/s with an 8 ms
margin), and a wait imposed by the guard does not move the grid. Why: the guard counts real send times,
which trail the grid by the loop's lateness; a grid that restarted from every guard wait would pass each
send's lateness on to the send ``limit`` calls later, for ever, and lose ~0.5 % of the cap (measured:
49.31/s). Held fixed, the grid takes the time back on the following slots while the guard still holds
every window.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["AdaptiveRate", "Clock", "Sleep", "Slot", "StrictLimiter"]

Clock = Callable[[], float]
"""Monotonic seconds (``time.monotonic`` unless a test injects its own)."""
Sleep = Callable[[float], Awaitable[None]]
"""Waits that many seconds of the matching clock (``asyncio.sleep`` unless a test injects its own)."""

_SPIN = 0.0012
"""Seconds before a deadline at which ``acquire`` stops sleeping on a timer and yields instead."""


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Slot:
    """One taken place in a window. Counts from ``acquire`` until ``mark_sent`` dates it to the real send.

    The server counts *arrivals*: a request that waits between its slot and the wire (the loop stalled on
    other work, a pooled connection was busy) reaches the server later than its slot, and the calls queued
    behind the stall then follow it closely. So the window is counted on real send times, and a slot not
    yet sent counts as "now" (pessimistic) until it is.
    """

    __slots__ = ("_clock", "sent", "t")

    def __init__(self, t: float, clock: Clock = time.monotonic) -> None:
        self.t = t
        self.sent = False
        self._clock = clock

    def mark_sent(self) -> None:
        """Date the slot to now, the moment its request went out (first call wins; later calls are no-ops)."""
        if not self.sent:
            self.t = max(self.t, self._clock())
            self.sent = True


class StrictLimiter:
    """At most ``limit`` acquisitions in any sliding window of ``window`` seconds, evenly paced.

    ``rate`` is calls per ``period`` seconds (``rate=50, period=1``; ``rate=1000, period=60``); 0 means
    unlimited (``acquire`` never waits). A rate below one call per period allows one call per
    ``period / rate`` seconds. Acquisitions are served first come, first served (``asyncio.Lock`` is fair).

    Promise: the send times of the slots (``Slot.mark_sent``; a slot not yet marked counts as sending now)
    never hold more than ``limit`` values in any half-open window ``(t - window, t]`` -- ``margin`` seconds
    of extra headroom are kept so that the server, which counts arrivals slightly after our sends, sees the
    same. Times are read from ``clock`` (default ``time.monotonic``) and waits use ``sleep`` (default
    ``asyncio.sleep``): tests inject a fake pair and check windows without real time passing.
    ``set_rate`` (AIMD) only slows the pacing; it never raises the hard limit.

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
        self.pace = pace
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

        The pacing itself never goes faster than the guard's capacity, ``limit`` per ``window + margin``."""
        return self._rate

    def set_rate(self, rate: float) -> None:
        """Pace at ``rate`` calls per ``period`` from the next slot on (clamped to the configured rate)."""
        if self.unlimited or not self.pace:
            return
        rate = min(max(rate, 1e-6), self.configured_rate)
        self._rate = rate
        # Never faster than the guard lets calls through on average, so the guard stays a safety net.
        self._interval = max(self.period / rate, (self.window + self.margin) / self.limit)

    def widen_margin(self, step: float, ceiling: float) -> None:
        """Add ``step`` seconds to the margin, up to ``ceiling``: a 429 from a server we kept under its cap on
        our own send times means its arrival stamps lag our sends by more than the margin allows for. The
        pacing slows with it (it runs at the guard's capacity); the margin never shrinks back in a run."""
        if self.unlimited or self.margin >= ceiling:
            return
        self.margin = min(ceiling, self.margin + step)
        if self.pace:
            self.set_rate(self._rate)

    def pause_until(self, deadline: float) -> None:
        """Let no call through before ``deadline`` (seconds of the limiter's clock), e.g. a Retry-After."""
        self._paused_until = max(self._paused_until, deadline)

    @property
    def paused_until(self) -> float:
        """The clock time before which no call goes through (0 when never paused)."""
        return self._paused_until

    def _window_ready(self, now: float) -> float:
        """The earliest time the window has room for one more send (``now`` if it has room already)."""
        horizon = self.window + self.margin
        # Sent slots that left the window never count again; unsent ones always count (as "now").
        while self._slots and self._slots[0].sent and self._slots[0].t <= now - horizon:
            self._slots.popleft()
        counted = [s for s in self._slots if not s.sent or s.t > now - horizon]
        if len(counted) < self.limit:
            return now
        times = sorted(s.t for s in counted if s.sent)
        excess = len(counted) - self.limit + 1  # how many must leave the window before one more fits
        if excess > len(times):
            return now + 0.002  # waiting on slots still on their way out: look again shortly
        return times[excess - 1] + horizon

    async def acquire(self, abort: Callable[[], bool] | None = None) -> bool:
        """Wait for a slot and take it, counting the send as happening now; ``False`` if ``abort`` fired.

        For callers that send at once; a caller that may wait before sending uses ``take``."""
        slot = await self.take(abort)
        if slot is None:
            return False
        slot.mark_sent()
        return True

    async def take(self, abort: Callable[[], bool] | None = None) -> Slot | None:
        """Wait for a slot and return it; the caller calls ``mark_sent()`` on it when its request goes out.

        ``abort`` is polled after every wait: when it returns true the call gives up without taking a slot
        and ``None`` is returned; so it is after ``close()``, which also ends a wait in progress.
        """
        if self.unlimited and self._paused_until == 0.0:
            stop = self.closed or (abort is not None and abort())
            return None if stop else Slot(self._clock(), self._clock)
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
            slot = Slot(now, self._clock)
            if self.limit:
                self._slots.append(slot)
            # The next slot follows this slot's grid time, not the late wake-up nor the guard's wait, so
            # neither accumulates into a lower rate; the window guard above still bounds every window.
            self._next_slot = max(planned, self._paused_until) + self._interval
            return slot

    def recorded(self) -> list[float]:
        """The send times of the slots still remembered, in the order taken; for tests."""
        return [s.t for s in self._slots]


class AdaptiveRate:
    """AIMD on a ``StrictLimiter``'s pacing: multiply by ``decrease`` on a 429, add back while quiet; and
    each such decrease also widens the limiter's margin by ``margin_step`` (at most ``margin_ceiling``, default
    5 % of the window), so a server whose arrival stamps jitter more than the margin stops answering 429
    for good at a cost of 0.4 % of the cap per 4 ms, instead of cutting the rate by 30 % again and again.

    A 429 lowers the rate at most once per ``hold`` seconds (a burst of 429s answering calls that were
    already in flight is one signal, not many). After ``hold`` seconds without a 429 the rate grows by
    ``step`` (default 5 % of the configured rate) every ``hold`` seconds until it is back at the configured
    rate. The rate never drops below ``floor`` (default 2 % of the configured rate).
    """

    def __init__(
        self,
        limiter: StrictLimiter,
        *,
        decrease: float = 0.7,
        hold: float = 1.0,
        step: float | None = None,
        floor: float | None = None,
        margin_step: float = 0.004,
        margin_ceiling: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limiter = limiter
        self.margin_step = margin_step
        self.margin_ceiling = margin_ceiling if margin_ceiling is not None else limiter.window * 0.05
        self.target = limiter.configured_rate
        self.decrease = decrease
        self.hold = hold
        self.step = step if step is not None else self.target * 0.05
        self.floor = floor if floor is not None else self.target * 0.02
        self._clock = clock
        self._last_change = -math.inf
        self._last_decrease = -math.inf
        self._last_429 = -math.inf

    @property
    def rate(self) -> float:
        """The rate currently applied to the limiter."""
        return self.limiter.rate

    def on_throttled(self) -> bool:
        """Record a 429; return whether the rate was lowered by it."""
        now = self._clock()
        self._last_429 = now
        if self.limiter.unlimited or now - self._last_decrease < self.hold:
            return False
        self.limiter.set_rate(max(self.floor, self.rate * self.decrease))
        self.limiter.widen_margin(self.margin_step, self.margin_ceiling)
        self._last_change = self._last_decrease = now
        return True

    def on_success(self) -> None:
        """Record an accepted call; raise the rate by ``step`` if it has been quiet for long enough."""
        if self.limiter.unlimited or self.rate >= self.target:
            return
        now = self._clock()
        if now - self._last_429 >= self.hold and now - self._last_change >= self.hold:
            self.limiter.set_rate(min(self.target, self.rate + self.step))
            self._last_change = now
