"""The MI API client: preflight, presign, PUT, confirm; strict limiters; retries by time; error mapping.

``ApiClient`` is the public entry point (``async with ApiClient(settings) as client``). Layout:
``settings`` (``ApiSettings``: every knob, with its help text), ``limiter`` (StrictLimiter, AdaptiveRate),
``responses`` (answers -> results or exceptions, ``redact_url``, ``ClientStats``), ``transport`` (the session,
the no-resend guard, network errors -> ours, ``ClientState``), ``routes`` (``Route``: one call's own state --
limiter, AIMD, 429 streak, 404 strikes -- and the cap margins), ``retry`` (``CallJudge``: what a failed call
means, with the run-wide silence and outage rules), ``calls`` (signed MI calls through the one
``pacing.Retrier``, judged by ``_judge``), ``storage`` (the PUT), ``stopping`` (``Halt``: waits cut short when
the run is interrupted), ``rows`` (``ApiClient``: preflight, confirm, ``upload``: one row end to end, its rounds
and polls on the same retrier).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.lazy import exports

if TYPE_CHECKING:
    from pipeline.client.aimd import AdaptiveRate
    from pipeline.client.limiter import StrictLimiter
    from pipeline.client.responses import RETRY_KINDS, ClientStats, redact_url
    from pipeline.client.rows import ApiClient
    from pipeline.client.settings import ApiSettings
    from pipeline.client.stopping import RowInterrupted
    from pipeline.client.transport import ClientState

__all__ = [
    "RETRY_KINDS",
    "AdaptiveRate",
    "ApiClient",
    "ApiSettings",
    "ClientState",
    "ClientStats",
    "RowInterrupted",
    "StrictLimiter",
    "redact_url",
]

__getattr__, __dir__ = exports(
    __name__,
    {
        "AdaptiveRate": "pipeline.client.aimd",
        "StrictLimiter": "pipeline.client.limiter",
        "RETRY_KINDS": "pipeline.client.responses",
        "ClientStats": "pipeline.client.responses",
        "redact_url": "pipeline.client.responses",
        "ApiClient": "pipeline.client.rows",
        "ApiSettings": "pipeline.client.settings",
        "RowInterrupted": "pipeline.client.stopping",
        "ClientState": "pipeline.client.transport",
    },
    globals(),
)
