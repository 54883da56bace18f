"""The one retry pacing of the tool, in the spirit of rclone's pacer: callers say what an outcome means (retry,
give up, fatal); this module says how long to wait and what kind of network failure an exception is. Used by
the API client's calls and PUT rounds and by the fetcher alike, so there is one backoff rule, one Retry-After
parser and one map of network exceptions. A leaf module: it imports nothing of the package."""

from __future__ import annotations

import asyncio
import email.utils
import enum
import math
import random
import time

import aiohttp

__all__ = ["Net", "backoff", "net_failure", "parse_retry_after", "pause"]


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds before retry ``attempt`` (1 for the first): full jitter, ``uniform(0, min(cap, base *
    2**(attempt-1)))``, so concurrent retries spread out instead of arriving together."""
    return random.uniform(0.0, min(cap, base * 2 ** min(max(attempt, 1) - 1, 30)))


def pause(attempt: int, base: float, cap: float, retry_after: float | None) -> float:
    """Seconds before retry ``attempt``: the server's Retry-After when it gave one (never above ``cap``),
    else ``backoff``."""
    if retry_after is not None:
        return min(retry_after, cap)
    return backoff(attempt, base, cap)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date (``now``: the epoch
    seconds to count from, default the wall clock); ``None`` if absent or unusable; never negative."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


class Net(enum.Enum):
    """What kind of network failure an exception is (``net_failure``)."""

    TLS = "tls"
    """The TLS handshake failed: deterministic, the same for every call to that host."""
    DNS = "dns"
    """The host name did not resolve: nothing was sent."""
    NO_CONNECTION = "no_connection"
    """No connection was made (refused, unreachable): nothing was sent."""
    TIMEOUT = "timeout"
    """No answer in time: the request may have been received."""
    BROKEN = "broken"
    """The connection broke after the request went out (or the answer was malformed): it may have been
    received."""
    INVALID_URL = "invalid_url"
    """A URL the HTTP client will not connect to: no retry helps."""


def net_failure(exc: BaseException) -> Net | None:
    """The kind of network failure ``exc`` is, or ``None`` when it is none (an HTTP answer, a bug)."""
    if isinstance(exc, aiohttp.ClientSSLError):
        return Net.TLS
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return Net.TIMEOUT
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return Net.DNS
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Net.NO_CONNECTION
    if isinstance(exc, aiohttp.InvalidURL):
        return Net.INVALID_URL
    if isinstance(exc, (aiohttp.ClientError, ConnectionError)):
        return Net.BROKEN
    return None
