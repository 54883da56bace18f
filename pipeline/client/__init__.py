"""The MI API client: presign, PUT, confirm; strict limiters; retries; error mapping; redaction.

``ApiClient`` is the public entry point (``async with ApiClient(settings) as client``). Layout:
``limiter`` (StrictLimiter, AdaptiveRate), ``responses`` (answers -> exceptions, ``redact_url``,
``ClientStats``), ``api`` (session and the three calls), ``rows`` (``upload``: one row end to end).
"""

from pipeline.client.limiter import AdaptiveRate, StrictLimiter
from pipeline.client.responses import RETRY_KINDS, ClientStats, redact_url
from pipeline.client.rows import ApiClient

__all__ = ["RETRY_KINDS", "AdaptiveRate", "ApiClient", "ClientStats", "StrictLimiter", "redact_url"]
