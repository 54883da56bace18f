"""``RetryBudget``: the pure rules that decide, after a failed MI call, whether to try again.

Kept apart from the async client so the rules read in one place and are tested without I/O: a call is
retried by *time* (``retry_window`` per call), the whole run tolerates errors for at most ``outage_budget``
seconds in a row, and an endpoint that has never answered HTTP is given ``SILENT_STRIKES`` tries.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.client.settings import ApiSettings
from pipeline.errors import ApiError, EndpointUnreachableError, FatalApiError, ServiceUnavailableError
from pipeline.pacing import backoff

__all__ = ["SILENT_STRIKES", "RetryBudget", "Verdict"]

SILENT_STRIKES = 2
"""Timeouts with no HTTP answer ever seen after which the endpoint counts as unreachable."""

Verdict = FatalApiError | ApiError | None
"""What ``RetryBudget.judge`` decides: stop the run (fatal), fail this call (its error), or ``None``: retry."""


@dataclass(slots=True)
class RetryBudget:
    """The run-wide retry state of one client: silent strikes and when the current trouble began.

    ``host`` names the endpoint in the sentences of the fatal errors it returns.
    """

    settings: ApiSettings
    host: str
    silent_strikes: int = 0
    trouble_since: float | None = None

    def succeeded(self) -> None:
        """A call was answered with success: the outage clock stops."""
        self.trouble_since = None

    def backoff(self, attempt: int) -> float:
        """The pause before retry ``attempt``: ``pacing.backoff`` (full jitter) on the client's settings."""
        return backoff(attempt, self.settings.backoff_base, self.settings.backoff_max)

    def silence_error(self) -> EndpointUnreachableError:
        """The fatal error for an endpoint that never answered."""
        timeout = self.settings.connect_timeout + self.settings.read_timeout
        return EndpointUnreachableError(
            f"{self.host} did not answer within {timeout:g} s ({SILENT_STRIKES} tries); "
            "check --endpoint and the network."
        )

    def judge(self, exc: ApiError, *, no_answer_yet: bool, no_answer: bool, attempt: int, started: float,
              now: float) -> Verdict:
        """Decide after a retryable failure (``exc``: a 429, 5xx, timeout or drop) of a call begun at
        ``started`` (seconds on the client's clock) and now at its ``attempt``-th try.

        Returns a ``FatalApiError`` when the run must stop: the endpoint has never answered HTTP
        (``no_answer_yet``) and this was its ``SILENT_STRIKES``-th silent failure (``no_answer``), or errors
        have lasted ``outage_budget`` seconds; the call's own error (annotated with the tries) when its
        ``retry_window`` is spent; else ``None``: wait and try again.
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
        if now - started >= self.settings.retry_window:
            return type(exc)(f"{exc} ({attempt} tries in {now - started:.0f} s)", status=exc.status, code=exc.code)
        return None
