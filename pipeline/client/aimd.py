"""AIMD on a ``StrictLimiter``'s pacing: slow down on a 429, come back while quiet."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from pipeline.client.limiter import StrictLimiter

__all__ = ["AdaptiveRate"]


class AdaptiveRate:
    """AIMD on a ``StrictLimiter``'s pacing: multiply by ``decrease`` on a 429, add back while quiet; and
    each such decrease also widens the limiter's margin and floor by ``margin_step`` (at most
    ``margin_ceiling``, default 5 % of the window), so a server that counts our calls later than the
    limiter's bounds allow for stops answering 429 for good at a cost of 0.4 % of the cap per 4 ms, instead
    of cutting the rate by 30 % again and again.

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
