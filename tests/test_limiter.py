"""StrictLimiter / AdaptiveRate and the pure answer-parsing of the client (no network)."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import time
from typing import Any

import pytest
from aiolimiter import AsyncLimiter
from emulator_tools import FakeClock, max_in_window

from pipeline.client import AdaptiveRate, StrictLimiter, redact_url
from pipeline.client.limiter import FLOOR
from pipeline.client.responses import api_error, error_fields, s3_error
from pipeline.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExhaustedError,
    RateLimitedError,
    RequestRejectedError,
    TransientError,
)
from pipeline.pacing import parse_retry_after


def fake_limiter(rate: float, period: float, **kw: Any) -> tuple[StrictLimiter, FakeClock]:
    """A limiter on a fake clock: its waits move time instead of taking it, so windows are exact."""
    fake = FakeClock()
    return StrictLimiter(rate, period, clock=fake.clock, sleep=fake.sleep, **kw), fake


async def _acquire_all(limiter: StrictLimiter, n: int) -> list[float]:
    """Acquire ``n`` slots concurrently, each sent and answered at once; the limiter's clock at each grant,
    in grant order."""
    times: list[float] = []

    async def one() -> None:
        slot = await limiter.take()
        assert slot is not None
        slot.mark_sent()
        slot.mark_answered()
        times.append(slot.t)

    await asyncio.gather(*(one() for _ in range(n)))
    return times


async def test_plain_asynclimiter_bursts_in_first_second() -> None:
    # Why StrictLimiter exists: AsyncLimiter(50, 1) starts with a full bucket, 50 calls at once...
    limiter = AsyncLimiter(50, 1)
    granted = 0
    while limiter.has_capacity() and granted < 200:
        await limiter.acquire()
        granted += 1
    assert granted >= 50
    # ...where StrictLimiter grants one and paces the rest.
    strict, _fake = fake_limiter(50, 1.0)
    times = await _acquire_all(strict, 50)
    assert times.count(times[0]) == 1 and times[-1] - times[0] == pytest.approx(49 / 50)


async def test_strict_limiter_never_exceeds_window_and_keeps_rate() -> None:
    limiter, _ = fake_limiter(100, 1.0, margin=0.005)
    times = await _acquire_all(limiter, 250)
    assert max_in_window(times, 1.0 + FLOOR - 1e-9) <= 100  # answered at once: held by the floor alone
    assert max_in_window(times[:101], 1.0) <= 100  # the first second included
    assert (len(times) - 1) / (max(times) - min(times)) == pytest.approx(100, rel=0.01)


async def test_guard_holds_even_when_pacing_is_defeated() -> None:
    # Pacing interval 0 would let everything through at once; the window guard alone must cap it.
    limiter, _ = fake_limiter(20, 0.5, margin=0.005)
    limiter._interval = 0.0
    times = await _acquire_all(limiter, 45)
    assert max_in_window(times, 0.5) <= 20
    assert max(times) - min(times) >= 1.0  # three windows' worth


async def test_unpaced_limiter_uses_the_whole_window_at_once() -> None:
    """pace=False (the status cap): the full window goes at once, the next call waits for the window."""
    limiter, fake = fake_limiter(1000, 60.0, margin=0.05, pace=False)
    start = fake.clock()
    times = await _acquire_all(limiter, 1001)
    assert times[:1000] == [start] * 1000
    assert times[1000] == pytest.approx(start + 60.0 + FLOOR)  # answered at once: the floor, not the margin
    assert max_in_window(times, 60.0) <= 1000


async def test_unlimited_never_waits_and_abort_gives_up() -> None:
    free, fake = fake_limiter(0, 1.0)
    start = fake.clock()
    for _ in range(1000):
        assert await free.acquire()
    assert fake.clock() == start
    slow, _ = fake_limiter(1, 1.0)
    assert await slow.acquire()
    assert await slow.acquire(abort=lambda: True) is False
    assert len(slow.recorded()) == 1


async def test_pause_until_delays_every_call() -> None:
    limiter, fake = fake_limiter(1000, 1.0)
    limiter.pause_until(fake.clock() + 0.3)
    times = await _acquire_all(limiter, 3)
    assert min(times) >= limiter.paused_until


async def test_close_ends_a_long_wait_at_once_and_cancel_releases_the_limiter() -> None:
    """Real time: a 1-hour pause ends the moment the limiter is closed, or the waiter is cancelled."""
    limiter = StrictLimiter(50, 1.0)
    limiter.pause_until(limiter.now() + 3600)
    waiter = asyncio.ensure_future(limiter.take())
    other = asyncio.ensure_future(limiter.take())
    await asyncio.sleep(0)
    waiter.cancel()  # the lock holder goes away: the next waiter must get the lock, not hang
    with pytest.raises(asyncio.CancelledError):
        await waiter
    limiter.close()
    assert await asyncio.wait_for(other, timeout=30) is None
    assert await limiter.take() is None and limiter.recorded() == []


async def test_set_rate_slows_pacing_but_never_raises_the_cap() -> None:
    limiter, _ = fake_limiter(100, 1.0)
    limiter.set_rate(20)
    assert limiter.rate == pytest.approx(20)
    times = await _acquire_all(limiter, 11)
    assert max(times) - min(times) == pytest.approx(0.5)
    limiter.set_rate(500)
    assert limiter.rate == pytest.approx(100)


def test_aimd_decreases_once_per_hold_and_recovers() -> None:
    now = [100.0]
    limiter = StrictLimiter(50, 1.0)
    aimd = AdaptiveRate(limiter, clock=lambda: now[0])
    assert aimd.on_throttled()
    assert aimd.rate == pytest.approx(35)
    now[0] += 0.5
    assert not aimd.on_throttled()  # the same burst of 429s
    assert aimd.rate == pytest.approx(35)
    now[0] += 1.0
    assert aimd.on_throttled()
    assert aimd.rate == pytest.approx(24.5)
    for _ in range(20):
        now[0] += 0.5
        aimd.on_success()
    assert aimd.rate == pytest.approx(24.5 + 2.5 * 10)
    for _ in range(20):
        now[0] += 1.0
        aimd.on_success()
    assert aimd.rate == pytest.approx(50)


def test_redact_url() -> None:
    url = "https://u:p@kr.object.ncloudstorage.com:8443/b/k%20y.jpg?X-Amz-Signature=abc&X-Amz-Credential=x"
    assert redact_url(url) == "https://kr.object.ncloudstorage.com:8443/b/k%20y.jpg?<redacted>"
    assert redact_url("http://h/p") == "http://h/p"


def test_error_fields_both_shapes_and_garbage() -> None:
    assert error_fields(b'{"code": "200", "message": "Authentication Failed"}') == ("200", "Authentication Failed")
    gw = b'{"error": {"errorCode": "210", "message": "Permission Denied", "details": "no access"}}'
    assert error_fields(gw) == ("210", "Permission Denied (no access)")
    assert error_fields(b"<html>502 Bad Gateway</html>") == (None, None)
    assert error_fields(b"") == (None, None)
    assert error_fields(b"[1, 2]") == (None, None)


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (parse_retry_after(date) or 0) <= 31
    assert parse_retry_after(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, b'{"code": "200", "message": "Authentication Failed"}', AuthenticationError),
        (401, b"not json", AuthenticationError),
        (401, b'{"error": {"errorCode": "210", "message": "Permission Denied"}}', PermissionDeniedError),
        (403, b'{"code": "230", "message": "denied"}', PermissionDeniedError),
        (404, b'{"code": "300", "message": "Not Found"}', RequestRejectedError),
        (429, b'{"code": "400", "message": "quota exceeded"}', QuotaExhaustedError),
        (429, b'{"code": "410", "message": "throttled"}', RateLimitedError),
        (429, b'{"error": {"errorCode": "420", "message": "rate limited"}}', RateLimitedError),
        (400, b'{"code": "100", "message": "bad request"}', RequestRejectedError),
        (400, b'{"code": "10001", "message": "invalid"}', RequestRejectedError),
        (413, b'{"code": "430", "message": "too large"}', RequestRejectedError),
        (500, b'{"code": "500", "message": "oops"}', TransientError),
        (502, b"<html>Bad Gateway</html>", TransientError),
    ],
)
def test_api_error_mapping(status: int, body: bytes, expected: type[Exception]) -> None:
    error = api_error("presign", status, body, "2")
    assert type(error) is expected
    assert f"HTTP {status}" in str(error)
    if isinstance(error, RateLimitedError):
        assert error.retry_after == 2.0


def test_a_404_is_the_workspaces_only_on_a_route_that_says_so() -> None:
    """A 404 is one row's refusal, unless the route classifies it (presign: the workspace or the path)."""
    from pipeline.client.routes import workspace_404

    missing = api_error("presign", 404, b'{"code": "300", "message": "Not Found"}')
    fatal = workspace_404(missing)
    assert type(fatal) is NotFoundError and "check the workspace name" in str(fatal) and fatal.code == "300"
    busy = api_error("presign", 503, b"")
    assert workspace_404(busy) is busy


def test_s3_error_classification_reads_only_code_and_message() -> None:
    url = "http://h/b/k.jpg?X-Amz-Signature=deadbeef"
    expired = s3_error(403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", url)
    assert expired.expired and expired.retryable and expired.code == "AccessDenied"
    mismatch = s3_error(
        403,
        b"<Error><Code>SignatureDoesNotMatch</Code><Message>nope</Message>"
        b"<StringToSign>AWS4-HMAC-SHA256 secretish</StringToSign><SignatureProvided>deadbeef</SignatureProvided>"
        b"</Error>",
        url,
    )
    assert not mismatch.retryable and not mismatch.expired
    assert "deadbeef" not in str(mismatch) and "secretish" not in str(mismatch)
    assert s3_error(503, b"<Error><Code>SlowDown</Code></Error>", url).retryable
    assert s3_error(500, b"garbage", url).retryable
    assert not s3_error(400, b"<Error><Code>EntityTooLarge</Code></Error>", url).retryable
    assert not s3_error(411, b"<Error><Code>MissingContentLength</Code></Error>", url).retryable
    assert "?<redacted>" in str(expired)


async def test_window_counts_real_send_times_not_slot_times() -> None:
    """A request that waited between its slot and the wire is counted from when it really went out."""
    limiter, _fake = fake_limiter(5, 0.5)  # at most 5 sends in any 0.5 s, paced 100 ms apart
    first = await limiter.take()
    assert first is not None
    t0 = first.t
    for i in range(4):  # four more, each sent and answered as soon as its slot comes (t0 + 0.1 ... t0 + 0.4)
        slot = await limiter.take()
        assert slot is not None
        slot.mark_answered()
        if i == 2:  # at t0 + 0.3 the first request finally reaches the wire, and is answered
            first.mark_answered()
    assert first.t == pytest.approx(t0 + 0.3)
    sixth = await limiter.take()
    assert sixth is not None
    # Counting slot times, the sixth could go at t0 + 0.5 (the first slot leaving the window). Counting real
    # sends (t0+0.3, +0.1, +0.2, +0.3, +0.4), it must wait for the one at t0+0.1 to leave: t0 + 0.6.
    assert sixth.t == pytest.approx(t0 + 0.6 + FLOOR)


async def test_pacing_spreads_the_first_window_and_the_guard_holds_the_next() -> None:
    """The grid spaces calls ``window / limit`` apart; from the second window on, each call also waits for
    its predecessor ``limit`` places back to leave the window (answered at once here: ``FLOOR`` after it)."""
    limiter, _ = fake_limiter(50, 1.0, margin=0.008)
    times = await _acquire_all(limiter, 101)
    assert {round(b - a, 9) for a, b in itertools.pairwise(times[:50])} == {0.02}
    assert times[50] - times[0] == pytest.approx(1.0 + FLOOR)
    assert times[100] - times[50] == pytest.approx(1.0 + FLOOR)
    assert limiter.rate == 50  # the rate asked for is still reported as configured


def test_outage_rules() -> None:
    """The run-wide rules: silence is fatal on the second strike only before any answer; errors lasting the
    outage budget stop the run; a success resets the clock. (A call's own window is the retrier's:
    tests/test_retrier.py.)"""
    from pipeline.client.responses import ClientStats
    from pipeline.client.retry import SILENT_STRIKES, CallJudge
    from pipeline.client.settings import ApiSettings
    from pipeline.config import Credentials
    from pipeline.errors import EndpointUnreachableError, ServiceUnavailableError

    settings = ApiSettings(workspace="ws", endpoint="https://api.example", credentials=Credentials("a", "s"),
                           retry_window=30, outage_budget=100)
    outage = CallJudge(settings, "api.example", ClientStats())
    slow = TransientError("presign: timed out", status=None)
    assert outage.fatal(slow, no_answer_yet=True, no_answer=True, now=1) is None
    fatal = outage.fatal(slow, no_answer_yet=True, no_answer=True, now=2)
    assert SILENT_STRIKES == 2 and isinstance(fatal, EndpointUnreachableError) and "api.example" in str(fatal)
    answered = CallJudge(settings, "api.example", ClientStats())
    for now in range(1, 99):  # timeouts after the endpoint has answered once are not silence
        assert answered.fatal(slow, no_answer_yet=False, no_answer=True, now=now) is None
    answered.succeeded()
    assert answered.fatal(slow, no_answer_yet=False, no_answer=False, now=200) is None
    assert answered.fatal(slow, no_answer_yet=False, no_answer=False, now=299) is None
    gone = answered.fatal(slow, no_answer_yet=False, no_answer=False, now=300)
    assert isinstance(gone, ServiceUnavailableError) and "for 100 s" in str(gone)


async def test_a_429_widens_the_margin_once_per_hold_up_to_a_ceiling() -> None:
    """A 429 while we kept the cap by our bounds means the server counts calls later than they allow for:
    each AIMD decrease adds 4 ms to the margin and the floor (at most 5 % of the window)."""
    now = [100.0]
    limiter, _ = fake_limiter(50, 1.0, margin=0.008)
    aimd = AdaptiveRate(limiter, clock=lambda: now[0])
    assert aimd.on_throttled()
    assert limiter.margin == pytest.approx(0.012)
    assert not aimd.on_throttled()  # the same burst of 429s: one signal
    assert limiter.margin == pytest.approx(0.012)
    for _ in range(20):
        now[0] += 1.5
        aimd.on_throttled()
    assert limiter.margin == pytest.approx(0.05)
    for _ in range(40):  # quiet again: the rate comes back, the wider margin stays
        now[0] += 1.5
        aimd.on_success()
    assert aimd.rate == pytest.approx(50)
    assert limiter.floor == pytest.approx(0.05)  # the floor widened with it: calls answered at once too
    times = await _acquire_all(limiter, 60)
    assert times[1] - times[0] == pytest.approx(1 / 50)
    assert times[50] - times[0] == pytest.approx(1.05)
    assert max_in_window(times, 1.05 - 1e-9) <= 50
