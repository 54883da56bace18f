"""The one retrier (``pipeline.pacing.Retrier``) on an injected clock: the caller's verdict decides (retry after
its wait, give up, fatal), the policy bounds the tries and the window, a pause never passes the window's end,
cancellation is never judged; a route's own 429 state (``Route.throttled``/``answered``); and the client's
judge (``client.retry.CallJudge``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from emulator_tools import FakeClock

from pipeline.client.limiter import StrictLimiter
from pipeline.client.responses import ClientStats
from pipeline.client.retry import CallJudge
from pipeline.client.routes import Route, Streak
from pipeline.client.settings import ApiSettings
from pipeline.errors import (
    AuthenticationError,
    RateLimitedError,
    RequestRejectedError,
    ServiceUnavailableError,
    TransientError,
)
from pipeline.models import Credentials
from pipeline.pacing import Outcome, Policy, Retrier, Try, Verdict, fatal, give_up, retry


class Flaky:
    """An attempt that raises ``OSError`` ``failures`` times, then returns ``"ok"``; it notes when each try began."""

    def __init__(self, fake: FakeClock, failures: int) -> None:
        self.fake, self.failures, self.began = fake, failures, list[float]()

    async def __call__(self) -> str:
        self.began.append(self.fake.clock())
        if len(self.began) <= self.failures:
            raise OSError(f"try {len(self.began)} failed")
        return "ok"


def retrier(fake: FakeClock, policy: Policy, on_fatal: Callable[[Exception], Exception] | None = None) -> Retrier:
    """A retrier whose pauses move the fake clock instead of taking time."""
    return Retrier(policy, clock=fake.clock, sleep=fake.sleep, on_fatal=on_fatal)


async def test_a_retried_call_waits_what_the_judge_says_and_returns_the_result() -> None:
    fake = FakeClock(0.0)
    flaky = Flaky(fake, failures=2)
    seen: list[Try] = []

    def judge(exc: Exception, attempt: Try) -> Verdict:
        seen.append(attempt)
        return retry(2.5 * attempt.number)

    assert await retrier(fake, Policy(0.1, 10.0, tries=5)).call(flaky, judge) == "ok"
    assert flaky.began == [0.0, 2.5, 7.5]  # the judged waits, one after each failure
    assert [(t.number, t.elapsed, t.last) for t in seen] == [(1, 0.0, False), (2, 2.5, False)]


async def test_the_tries_bound_ends_the_call_with_the_last_tries_own_error() -> None:
    fake = FakeClock(0.0)
    flaky = Flaky(fake, failures=100)
    lasts: list[bool] = []

    def judge(exc: Exception, attempt: Try) -> Verdict:
        lasts.append(attempt.last)
        return retry(0.0)  # asks for more: the policy says no on the third

    with pytest.raises(OSError, match="try 3 failed"):
        await retrier(fake, Policy(0.1, 10.0, tries=3)).call(flaky, judge)
    assert len(flaky.began) == 3 and lasts == [False, False, True]


async def test_the_window_bounds_the_call_and_the_last_try_comes_at_its_end() -> None:
    """A pause is cut to what is left of the window (7 s asked, 3 s left), so the last try is made at its end
    (not past it) and then the call gives up."""
    fake = FakeClock(0.0)
    flaky = Flaky(fake, failures=100)

    def judge(exc: Exception, attempt: Try) -> Verdict:
        return retry(attempt.pause(retry_after=7.0))

    with pytest.raises(OSError, match="try 3 failed"):
        await retrier(fake, Policy(0.1, 100.0, window=10.0)).call(flaky, judge)
    assert flaky.began == [0.0, 7.0, 10.0]


def test_a_tries_pause_is_the_one_rule() -> None:
    """Retry-After obeyed up to the cap; else full jitter under ``base * 2**(n-1)`` and the cap."""
    policy = Policy(0.5, 4.0)
    assert Try(1, 0.0, policy).pause(retry_after=3.0) == 3.0
    assert Try(1, 0.0, policy).pause(retry_after=30.0) == 4.0
    for number, bound in ((1, 0.5), (2, 1.0), (3, 2.0), (9, 4.0)):
        draws = [Try(number, 0.0, policy).pause() for _ in range(300)]
        assert all(0.0 <= d <= bound for d in draws) and max(draws) > 0.7 * bound


async def test_give_up_raises_the_judged_error_or_the_tries_own_after_one_try() -> None:
    fake = FakeClock(0.0)
    for verdict, expected in ((give_up(ValueError("annotated")), "annotated"), (give_up(), "try 1 failed")):
        flaky = Flaky(fake, failures=5)
        with pytest.raises(Exception, match=expected):
            await retrier(fake, Policy(0.1, 10.0, tries=5)).call(flaky, lambda _e, _t, v=verdict: v)
        assert len(flaky.began) == 1


async def test_a_fatal_verdict_goes_through_on_fatal_once_and_ends_the_call() -> None:
    fake = FakeClock(0.0)
    stopped: list[Exception] = []
    first = RuntimeError("the first fatal error")

    def on_fatal(exc: Exception) -> Exception:
        stopped.append(exc)
        return first  # the client's rule: the first fatal error wins

    flaky = Flaky(fake, failures=5)
    with pytest.raises(RuntimeError) as raised:
        await retrier(fake, Policy(0.1, 10.0, tries=5), on_fatal).call(
            flaky, lambda _e, _t: fatal(ValueError("stop")))
    assert raised.value is first and [str(e) for e in stopped] == ["stop"] and len(flaky.began) == 1
    assert fatal().outcome is Outcome.FATAL and give_up().outcome is Outcome.GIVE_UP


async def test_cancellation_is_never_judged_and_a_sleep_that_raises_ends_the_call() -> None:
    fake = FakeClock(0.0)
    judged: list[BaseException] = []

    def judge(exc: Exception, attempt: Try) -> Verdict:
        judged.append(exc)
        return retry(1.0)

    async def cancelled() -> str:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await retrier(fake, Policy(0.1, 10.0, tries=3)).call(cancelled, judge)
    assert judged == []

    async def interrupted(seconds: float) -> None:
        raise LookupError("the run stopped during the pause")

    flaky = Flaky(fake, failures=5)
    with pytest.raises(LookupError):
        await Retrier(Policy(0.1, 10.0), clock=fake.clock, sleep=interrupted).call(flaky, judge)
    assert len(flaky.began) == 1 and len(judged) == 1


def test_a_routes_429s_pause_its_limiter_longer_while_they_go_on_and_a_success_ends_the_streak() -> None:
    """``Route.throttled``: Retry-After up to ``longest``; without one, ``base`` plus the streak's backoff, which
    grows with the streak (routes sharing a limiter share it) until a success resets it."""
    fake = FakeClock(0.0)
    limiter = StrictLimiter(5, 1.0, clock=fake.clock, sleep=fake.sleep)
    shared = Streak()
    create = Route("person_create", "POST", limiter, streak=shared)
    add = Route("person_add", "POST", limiter, streak=shared)
    throttle = RateLimitedError("429")
    create.throttled(RateLimitedError("429", retry_after=500.0), now=0.0, base=1.0, cap=64.0, longest=60.0)
    assert limiter.paused_until == 60.0
    for _ in range(6):
        create.throttled(throttle, now=0.0, base=1.0, cap=64.0, longest=60.0)
        add.throttled(throttle, now=0.0, base=1.0, cap=64.0, longest=60.0)
    assert shared.count == 13
    longest_seen = 0.0
    for _ in range(200):  # the 14th 429 in a row: base + uniform(0, 64)
        probe = StrictLimiter(5, 1.0, clock=fake.clock, sleep=fake.sleep)
        Route("x", "POST", probe, streak=shared).throttled(throttle, now=0.0, base=1.0, cap=64.0, longest=60.0)
        longest_seen = max(longest_seen, probe.paused_until)
    assert 40.0 < longest_seen <= 65.0
    add.answered()
    assert shared.count == 0
    calm = StrictLimiter(5, 1.0, clock=fake.clock, sleep=fake.sleep)
    Route("x", "POST", calm, streak=shared).throttled(throttle, now=0.0, base=1.0, cap=64.0, longest=60.0)
    assert 1.0 <= calm.paused_until <= 2.0  # the first of a new streak: base + uniform(0, base)


def test_the_clients_judge_says_what_a_failed_call_means() -> None:
    """``CallJudge``: a 429 retries at once (its limiter waits), a 5xx after the backoff; a spent window fails
    the call with its error annotated; a refusal fails it as it is; a fatal answer, or errors lasting the
    outage budget, stop the run."""
    settings = ApiSettings(workspace="ws", endpoint="https://api.example", credentials=Credentials("a", "s"),
                           retry_window=30, outage_budget=100, backoff_base=0.5, backoff_max=4.0)
    stats = ClientStats()
    calls = CallJudge(settings, "api.example", stats)
    route = Route("presign", "POST", StrictLimiter(50, 1.0))
    policy = Policy(settings.backoff_base, settings.backoff_max, window=settings.retry_window)
    early, spent = Try(1, 0.0, policy), Try(7, 31.0, policy)
    busy = TransientError("presign: HTTP 503", status=503)

    def judged(exc: Exception, attempt: Try, now: float) -> Verdict:
        return calls.judge(route, exc, attempt, no_answer_yet=False, now=now)

    assert judged(RateLimitedError("presign: HTTP 429"), early, 0.0) == retry(0.0)
    wait = judged(busy, early, 1.0)
    assert wait.outcome is Outcome.RETRY and 0.0 <= wait.wait <= 0.5
    assert (stats.retries["rate_limited"], stats.retries["transient"]) == (1, 1)
    ended = judged(busy, spent, 31.0)
    assert ended.outcome is Outcome.GIVE_UP and type(ended.error) is TransientError
    assert "7 tries in 31 s" in str(ended.error) and stats.retries["transient"] == 1
    assert judged(RequestRejectedError("presign: HTTP 400"), early, 32.0) == give_up()
    assert judged(AuthenticationError("presign: HTTP 401"), early, 33.0) == fatal()
    gone = judged(busy, early, 100.0)  # trouble since 0 s, no success between: the outage budget is spent
    assert gone.outcome is Outcome.FATAL and isinstance(gone.error, ServiceUnavailableError)
