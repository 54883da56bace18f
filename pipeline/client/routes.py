"""``Route``: how one kind of signed MI call is made, with its own state (the limiter, AIMD, the 429 streak, the
404 strikes, the counter), so the client names no call; and the margins of the MI caps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.client.aimd import AdaptiveRate
from pipeline.client.limiter import StrictLimiter
from pipeline.errors import ApiError, FatalApiError, NotFoundError, RateLimitedError, RequestRejectedError
from pipeline.pacing import backoff

__all__ = ["PRESIGN_MARGIN", "NotFoundStrikes", "Route", "Streak", "workspace_404"]

PRESIGN_MARGIN = 0.008
"""Seconds of headroom on the 1 s presign window for calls on a long path: the server counts *arrivals*,
whose lag behind our sends varies. A call answered sooner than this is held by its round trip instead (a
bound that always holds: on a loopback, median 2 ms); one answered later, by this plus how much longer than
the path's shortest recent round trip it took (``StrictLimiter.leaves_at``). On a path whose round trips all
exceed it, the cost is 0.8 % of the cap (49.6/s of 50)."""


class Streak:
    """How many 429s in a row one limiter's calls got (reset by a success)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


@dataclass(frozen=True, slots=True)
class Route:
    """How one kind of signed MI call is made (``ApiClientBase.signed_call``)."""

    kind: str
    """Names the call in logs and messages: ``presign``, ``status``, ``person_create``, ..."""
    method: str
    limiter: StrictLimiter
    adaptive: AdaptiveRate | None = None
    """AIMD on ``limiter``: lowered on a 429, raised back while calls succeed."""
    classify: Callable[[ApiError | FatalApiError], ApiError | FatalApiError] | None = None
    """Maps the exception of a non-success answer before the client acts on it (e.g. makes one fatal)."""
    result_required: bool = True
    """Whether a code-"0" answer must carry a ``result`` object (else it counts as transient)."""
    counter: str | None = None
    """The ``ClientStats`` field that counts this route's calls (``presign_calls``, ``confirm_calls``), if any."""
    shown: StrictLimiter | None = None
    """The limiter whose rate and margin a 429 log line shows (default: ``limiter``)."""
    not_found: NotFoundStrikes | None = None
    """For a route whose path may be wrong: its 404s counted, to tell a wrong path from a missing key."""
    streak: Streak = field(default_factory=Streak)
    """The 429s in a row on ``limiter``: routes sharing a limiter share one (pass the same ``Streak``)."""

    def answered(self) -> None:
        """A call of this route succeeded: its 429 streak ends, its path is proven, and AIMD may speed up."""
        self.streak.count = 0
        if self.not_found is not None:
            self.not_found.succeeded()
        if self.adaptive is not None:
            self.adaptive.on_success()

    def throttled(self, error: RateLimitedError, *, now: float, base: float, cap: float,
                  longest: float) -> None:
        """A 429: pause ``limiter`` for everyone (the cap is per key) -- for the server's Retry-After up to
        ``longest`` seconds, or, without one, ``base`` plus the backoff (``pacing.backoff`` up to ``cap``) of
        the streak of 429s, so the pause grows while they go on -- and lower the pacing (AIMD) so a server
        whose real limit is lower stops answering 429."""
        self.streak.count += 1
        if error.retry_after is not None:
            wait = min(error.retry_after, longest)
        else:
            wait = base + backoff(self.streak.count, base, cap)
        self.limiter.pause_until(now + wait)
        if self.adaptive is not None:
            self.adaptive.on_throttled()


def workspace_404(error: ApiError | FatalApiError) -> ApiError | FatalApiError:
    """A ``Route.classify`` for a route whose every 404 means the workspace or the endpoint path (presign): a
    fatal ``NotFoundError``, never one row's refusal."""
    if isinstance(error, RequestRejectedError) and error.status == 404:
        return NotFoundError(f"{error} (check the workspace name and the endpoint)", status=404, code=error.code)
    return error


class NotFoundStrikes:
    """A route whose every call so far answered 404 (``strikes`` of them, none ever answered otherwise) has a
    wrong path, not a missing key: then the 404 becomes one clear ``NotFoundError``. Per-route state, so the
    client names no call."""

    def __init__(self, strikes: int, hint: str) -> None:
        self.strikes, self.hint = strikes, hint
        self._ok, self._misses = False, 0

    def succeeded(self) -> None:
        """A call of the route was answered: the path is right."""
        self._ok, self._misses = True, 0

    def missed(self, error: ApiError | FatalApiError) -> ApiError | FatalApiError:
        """A 404: ``error`` as it is, or, once every call so far missed ``strikes`` times, the path's error."""
        self._misses += 1
        if not self._ok and self._misses >= self.strikes:
            return NotFoundError(f"{error} (every {self.hint} call so far; check the {self.hint} path)",
                                 status=404, code=getattr(error, "code", None))
        return error
