"""``Route``: how one kind of signed MI call is made, and the margins of the MI caps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.client.aimd import AdaptiveRate
from pipeline.client.limiter import StrictLimiter
from pipeline.errors import ApiError, FatalApiError

__all__ = ["PRESIGN_MARGIN", "Route"]

PRESIGN_MARGIN = 0.008
"""Seconds of headroom on the 1 s presign window for calls on a long path: the server counts *arrivals*,
whose lag behind our sends varies. A call answered sooner than this is held by its round trip instead (a
bound that always holds: on a loopback, median 2 ms); one answered later, by this plus how much longer than
the path's shortest recent round trip it took (``StrictLimiter.leaves_at``). On a path whose round trips all
exceed it, the cost is 0.8 % of the cap (49.6/s of 50)."""


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
