"""``Outage``: the run-wide rules that turn a failing MI call into the run's end, kept apart from the async
client so they read in one place and are tested without I/O.

How one call is retried (its ``retry_window``, the backoff) is ``pipeline.pacing.Retrier``'s; what this adds is
the state every call shares: the whole run tolerates errors for at most ``outage_budget`` seconds in a row, and
an endpoint that has never answered HTTP is given ``SILENT_STRIKES`` tries.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.client.settings import ApiSettings
from pipeline.errors import ApiError, EndpointUnreachableError, FatalApiError, ServiceUnavailableError

__all__ = ["SILENT_STRIKES", "Outage"]

SILENT_STRIKES = 2
"""Timeouts with no HTTP answer ever seen after which the endpoint counts as unreachable."""


@dataclass(slots=True)
class Outage:
    """The run-wide failure state of one client: silent strikes and when the current trouble began.

    ``host`` names the endpoint in the sentences of the fatal errors it returns.
    """

    settings: ApiSettings
    host: str
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
