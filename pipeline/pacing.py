"""The one retrier of the tool, in the style of rclone's pacer (``lib/pacer``): ``Retrier.call`` tries, asks
its caller what a failure means (a ``Verdict``: retry after a pause, give up, or fatal), and waits; the caller
never writes a loop. One backoff rule (``backoff``: full jitter), one Retry-After parser and one map of network
exceptions (``net_failure``) live beside it. Used by the API client's calls, its presign+PUT rounds and its
status polling, and by the fetcher alike. A leaf module: it imports nothing of the package."""

from __future__ import annotations

import asyncio
import email.utils
import enum
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp

__all__ = [
    "Judge",
    "Net",
    "Outcome",
    "Policy",
    "Retrier",
    "Try",
    "Verdict",
    "backoff",
    "fatal",
    "give_up",
    "net_failure",
    "parse_retry_after",
    "pause",
    "retry",
]

T = TypeVar("T")


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


class Outcome(enum.Enum):
    """What a failed try means, in its caller's words."""

    RETRY = "retry"
    """Try again after ``Verdict.wait`` seconds (unless the policy's tries or window are spent)."""
    GIVE_UP = "give_up"
    """This call fails: its error goes to the caller of ``Retrier.call``."""
    FATAL = "fatal"
    """The run must stop: the error goes through the retrier's ``on_fatal`` (e.g. the client's fatal state)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A caller's judgement of one failed try (see ``retry``, ``give_up``, ``fatal``)."""

    outcome: Outcome
    wait: float = 0.0
    """``RETRY``: seconds before the next try (``Try.pause`` gives the one rule's answer; 0 when something else
    already waits, e.g. a limiter paused by a 429)."""
    error: Exception | None = None
    """``GIVE_UP``/``FATAL``: raised in place of the try's own exception (e.g. annotated with the tries made)."""


def retry(wait: float) -> Verdict:
    """Try again after ``wait`` seconds."""
    return Verdict(Outcome.RETRY, wait=wait)


def give_up(error: Exception | None = None) -> Verdict:
    """Fail the call with ``error`` (default: the try's own exception)."""
    return Verdict(Outcome.GIVE_UP, error=error)


def fatal(error: Exception | None = None) -> Verdict:
    """Stop the run with ``error`` (default: the try's own exception)."""
    return Verdict(Outcome.FATAL, error=error)


@dataclass(frozen=True, slots=True)
class Policy:
    """The bounds and pacing of one kind of call: ``backoff(attempt, base, cap)`` between tries, at most
    ``tries`` tries and (or) ``window`` seconds from the first try's start; ``None``: unbounded."""

    base: float
    cap: float
    tries: int | None = None
    window: float | None = None


@dataclass(frozen=True, slots=True)
class Try:
    """One failed try as the judge sees it: its ``number`` (1 for the first) and the seconds ``elapsed`` since
    the first try began, under ``policy``."""

    number: int
    elapsed: float
    policy: Policy

    @property
    def last(self) -> bool:
        """Whether the policy allows no further try (its tries made or its window spent): a ``RETRY``
        verdict then gives up with the try's exception, so a judge words its give-up here."""
        policy = self.policy
        return (policy.tries is not None and self.number >= policy.tries) or (
            policy.window is not None and self.elapsed >= policy.window)

    def pause(self, retry_after: float | None = None) -> float:
        """The one rule's pause before the next try (``pause``: the server's Retry-After up to the cap, else
        full jitter), never past the end of the policy's window, so the last try comes at its end."""
        policy = self.policy
        wait = pause(self.number, policy.base, policy.cap, retry_after)
        if policy.window is not None:
            wait = min(wait, max(0.0, policy.window - self.elapsed))
        return wait


Judge = Callable[[Exception, Try], Verdict]
"""What a caller says a failed try means: given the try's exception and the ``Try``, a ``Verdict``."""


class Retrier:
    """rclone's ``Pacer.Call`` for asyncio: ``await retrier.call(attempt, judge)`` awaits ``attempt()`` until it
    returns, asking ``judge`` after each exception whether to retry (after the verdict's wait, on ``sleep``),
    give up or stop the run. Cancellation is never judged (it is no ``Exception``). ``clock`` measures the
    policy's window; ``sleep`` may end early by raising (e.g. a stopped run's ``RowInterrupted``), which
    propagates. ``on_fatal`` turns a fatal error into the one to raise (default: itself). Stateless between
    calls, so one retrier serves any number of concurrent calls."""

    def __init__(self, policy: Policy, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 on_fatal: Callable[[Exception], Exception] | None = None) -> None:
        self.policy = policy
        self._clock, self._sleep, self._on_fatal = clock, sleep, on_fatal

    async def call(self, attempt: Callable[[], Awaitable[T]], judge: Judge) -> T:
        """``attempt()``'s result, retried as ``judge`` says within the policy; else the judged error."""
        started, number = self._clock(), 0
        while True:
            number += 1
            try:
                return await attempt()
            except Exception as exc:  # judged by the caller: retry, give up or fatal
                verdict = self._judged(judge, exc, Try(number, self._clock() - started, self.policy))
                if verdict is None:
                    raise
                if verdict.outcome is not Outcome.RETRY:
                    raise verdict.error or exc from None
            await self._sleep(verdict.wait)

    def _judged(self, judge: Judge, exc: Exception, attempt: Try) -> Verdict | None:
        """The verdict to act on: a retry (only while the policy allows one), a give-up or fatal error to
        raise (fatal through ``on_fatal``), or ``None``: raise the try's own exception as it is."""
        verdict = judge(exc, attempt)
        if verdict.outcome is Outcome.FATAL:
            error = verdict.error or exc
            return give_up(error if self._on_fatal is None else self._on_fatal(error))
        if verdict.outcome is Outcome.RETRY and attempt.last:
            return None
        if verdict.outcome is Outcome.GIVE_UP and verdict.error is None:
            return None
        return verdict
