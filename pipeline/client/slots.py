"""A limiter's slots: one taken place in a rate window each, dated to its request's real send and answer.

The server counts a call when it *arrives*, and we never see that moment. We do see two moments around it:
the arrival is no earlier than our send and no later than our first byte of the answer. So a call that was
answered ``rtt`` seconds after it was sent arrived at most ``rtt`` after the send, and the call ``limit``
places later is certainly outside its window if it is sent ``window + rtt`` after it: a bound that holds on
any network, however the server's stamps lag (``StrictLimiter`` turns it into the window guard).

On a long path (``rtt`` tens of ms or more) that bound is too careful: every call's arrival trails its
send by about the same one-way delay, so only the *spread* of that delay matters. That spread is taken to be
at most how much longer this round trip took than the shortest recent one (the path's own delay), plus a
margin: an assumption, not a proof (a path could delay one call on the way out and the next on the way
back). ``RoundTrips`` keeps the recent round trips so that each answered slot knows its excess.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["RoundTrips", "Slot"]

_KEEP = 100
"""How many recent round trips the shortest is taken from (two seconds of calls at 50/s)."""
_KNOWN = 10
"""How many round trips must be known before the shortest stands for the path: until then a slow first call
could pass for the path's own delay, and each call is held by its whole round trip."""


class RoundTrips:
    """The recent round-trip times of one limiter's calls; the shortest stands for the path's own delay."""

    __slots__ = ("_recent",)

    def __init__(self, keep: int = _KEEP) -> None:
        self._recent: deque[float] = deque(maxlen=keep)

    def add(self, rtt: float) -> float:
        """Record ``rtt`` (seconds); return how much longer it took than the shortest recent one (>= 0), or
        all of it while fewer than ``_KNOWN`` round trips were known before it."""
        known = len(self._recent)
        self._recent.append(rtt)
        return rtt if known < _KNOWN else rtt - min(self._recent)


class Slot:
    """One taken place in a window. Counts from ``take`` until the window guard knows it has left.

    ``mark_sent`` dates it to the moment its request went out (``t``); ``mark_answered`` to the moment the
    answer came back, which bounds how late the server can have counted it (``rtt``, and ``excess`` over the
    shortest recent round trip). A slot built without a ``RoundTrips`` book does not track its answer: the
    guard then assumes the server counted it within the limiter's margin of the send (the callers of
    ``StrictLimiter.acquire``, which send at once and report nothing back).
    """

    __slots__ = ("_clock", "answered", "book", "excess", "rtt", "sent", "t")

    def __init__(self, t: float, clock: Callable[[], float] = time.monotonic, book: RoundTrips | None = None) -> None:
        self.t = t
        self.sent = False
        self.answered = False
        self.rtt = 0.0
        self.excess = 0.0
        self.book = book
        self._clock = clock

    def mark_sent(self) -> None:
        """Date the slot to now, the moment its request went out (first call wins; later calls are no-ops)."""
        if not self.sent:
            self.t = max(self.t, self._clock())
            self.sent = True

    def mark_answered(self) -> None:
        """Date the answer to now: its first bytes are in, or the call ended without one (first call wins).

        A call that ends unsent (it failed before its bytes went out) is dated sent now, with no round trip:
        the server never saw it, and counting it from now is safe."""
        self.mark_sent()
        if self.answered:
            return
        self.answered = True
        if self.book is not None:
            self.rtt = max(0.0, self._clock() - self.t)
            self.excess = self.book.add(self.rtt)
