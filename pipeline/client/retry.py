"""``CallJudge``: what a failed signed MI call means (the judge the client's ``pacing.Retrier`` asks), kept
apart from the async client so the rules read in one place and are tested without I/O.

The retrier bounds one call (its ``retry_window``) and owns the backoff; the judge adds the state every call
shares: the whole run tolerates errors for at most ``outage_budget`` seconds in a row, and an endpoint that has
never answered HTTP is given ``SILENT_STRIKES`` tries.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from pipeline.client.responses import ClientStats
from pipeline.client.routes import Route
from pipeline.client.settings import ApiSettings
from pipeline.client.transport import NoAnswerError
from pipeline.errors import (
    ApiError,
    EndpointUnreachableError,
    FatalApiError,
    RateLimitedError,
    ServiceUnavailableError,
    TransientError,
)
from pipeline.pacing import Try, Verdict, fatal, give_up, retry

__all__ = ["SILENT_STRIKES", "CallJudge"]

log = structlog.get_logger(__name__)

SILENT_STRIKES = 2
"""Timeouts with no HTTP answer ever seen after which the endpoint counts as unreachable."""


@dataclass(slots=True)
class CallJudge:
    """The run-wide failure state of one client (silent strikes, when the current trouble began) and the
    judge of its calls' failures. ``host`` names the endpoint in the sentences of the fatal errors it returns;
    ``stats`` counts the retries."""

    settings: ApiSettings
    host: str
    stats: ClientStats
    silent_strikes: int = 0
    trouble_since: float | None = None

    def succeeded(self) -> None:
        """A call was answered with success: the outage clock stops."""
        self.trouble_since = None

    def silence_error(self) -> EndpointUnreachableError:
        """The fatal error for an endpoint that never answered."""
        timeout = self.settings.connect_timeout + self.settings.read_timeout
        return EndpointUnreachableError(
            f"{self.host} did not answer within {timeout:g} s ({SILENT_STRIKES} tries); "
            "check --endpoint and the network."
        )

    def fatal(self, exc: ApiError, *, no_answer_yet: bool, no_answer: bool, now: float) -> FatalApiError | None:
        """After a retryable failure (``exc``: a 429, 5xx, timeout or drop) at ``now`` (seconds on the client's
        clock): the ``FatalApiError`` that stops the run, or ``None`` (the call's own rules decide).

        Fatal when the endpoint has never answered HTTP (``no_answer_yet``) and this was its
        ``SILENT_STRIKES``-th silent failure (``no_answer``), or when errors have lasted ``outage_budget``
        seconds without a success between.
        """
        if no_answer and no_answer_yet:
            self.silent_strikes += 1
            if self.silent_strikes >= SILENT_STRIKES:
                return self.silence_error()
        if self.trouble_since is None:
            self.trouble_since = now
        elif now - self.trouble_since >= self.settings.outage_budget:
            return ServiceUnavailableError(
                f"{self.host} answered only errors, 429 or nothing for {now - self.trouble_since:.0f} s "
                f"(last: {exc}); stopped. Run the same command again later to resume.",
                status=exc.status, code=exc.code)
        return None

    def judge(self, route: Route, exc: Exception, attempt: Try, *, no_answer_yet: bool, now: float) -> Verdict:
        """What a failed try of ``route`` means. A fatal answer stops the run; a 429, 5xx, timeout or drop is
        retried -- unless ``fatal`` says the run must stop, or the call's retry window is spent (the call fails
        with its last error, annotated with the tries); anything else (a per-row refusal, a bug) fails the call
        as it is. A 429 retries at once: its limiter was paused for everyone (``Route.throttled``), so the next
        try waits there, not here; other failures wait the retrier's pause."""
        if isinstance(exc, FatalApiError):
            return fatal()
        if not isinstance(exc, (RateLimitedError, TransientError)):
            return give_up()
        stop = self.fatal(exc, no_answer_yet=no_answer_yet, no_answer=isinstance(exc, NoAnswerError), now=now)
        if stop is not None:
            return fatal(stop)
        if attempt.last:
            return give_up(type(exc)(f"{exc} ({attempt.number} tries in {attempt.elapsed:.0f} s)",
                                     status=exc.status, code=exc.code))
        if isinstance(exc, RateLimitedError):
            self.stats.retries["rate_limited"] += 1
            shown = route.shown or route.limiter
            log.info("rate_limited", call=route.kind, attempt=attempt.number, code=exc.code,
                     retry_after=exc.retry_after, rate=round(shown.rate, 2), margin_ms=round(shown.margin * 1000, 1))
            return retry(0.0)
        self.stats.retries["transient"] += 1
        delay = attempt.pause()
        log.info("retrying", call=route.kind, attempt=attempt.number, status=exc.status, error=str(exc),
                 delay=round(delay, 3))
        return retry(delay)
