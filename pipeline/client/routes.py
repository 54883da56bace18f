"""``Route``: how one kind of signed MI call is made, and the margins of the MI caps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.client.limiter import AdaptiveRate, StrictLimiter
from pipeline.errors import ApiError, FatalApiError

__all__ = ["PRESIGN_MARGIN", "Route"]

PRESIGN_MARGIN = 0.008
"""Seconds of headroom on the 1 s presign window: the server counts *arrivals*, which lag our sends by a
varying delay (measured against an emulator process on 2 cores: median 1 ms, p99 4 ms, max ~8 ms). With the
pacing at the guard's capacity this costs 0.8 % of the cap (49.6/s of 50)."""


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
