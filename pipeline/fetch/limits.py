"""The fetch stage's shared bounds: the byte budget (``budget.ByteBudget``), and the guard that closes a store
refusing every request (unknown bucket, no permission) after a handful of tries, stopping the run only when
every store it reads from is closed (wrong credentials or endpoint).
"""

from __future__ import annotations

from pipeline.errors import FatalApiError
from pipeline.fetch.attempt import Failure
from pipeline.fetch.budget import ByteBudget

__all__ = ["AccessGuard", "ByteBudget", "SourceAccessError"]


class SourceAccessError(FatalApiError):
    """Every store the run reads from refused its first requests (401/403 or an unknown bucket) and none
    succeeded: wrong credentials, endpoint or bucket. The run stops once (exit 3) instead of failing row by row."""


class AccessGuard:
    """Judges each store (``scheme://bucket``) by its own requests. A store whose first ``threshold``
    consecutive requests were refused (401/403, unknown bucket) with none succeeding is *closed*: its later rows
    are rejected without a request, with a sentence naming the store, and the other stores go on. The run stops
    (``SourceAccessError``) only when every store the run has used is closed: then the credentials or the
    endpoint are wrong, not one bucket's name. A store that served one object is trusted for the run: later
    refusals are per-object (one forbidden key), never closing it. Web hosts and local files are never closed,
    but count as stores the run has (``saw``)."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._failures: dict[str, int] = {}
        self._proven: set[str] = set()
        self._seen: set[str] = set()
        self._closed: dict[str, Failure] = {}

    def saw(self, store: str) -> None:
        """Record that the run reads from ``store`` (an object store, a web host, or ``file://``)."""
        self._seen.add(store)

    def check(self, store: str) -> Failure | None:
        """Before a request to ``store``: the row's rejection if the store is closed, else ``None``. Raises
        ``SourceAccessError`` when every store seen is closed."""
        self._seen.add(store)
        closed = self._closed.get(store)
        if closed is not None:
            self._stop_if_all_closed(store)
        return closed

    def succeeded(self, store: str) -> None:
        """Record an answer from ``store`` that proves access (an object read, or a plain not-found)."""
        self._proven.add(store)
        self._failures.pop(store, None)

    def refused(self, store: str, why: str, reason: str) -> None:
        """Record a refusal (``why``: e.g. ``403 AccessDenied``; ``reason`` the row's, e.g. ``access_denied``);
        the ``threshold``-th in a row closes the store, and raises if no other store is left open."""
        if store in self._proven or store in self._closed:
            return
        count = self._failures[store] = self._failures.get(store, 0) + 1
        if count >= self.threshold:
            self._closed[store] = Failure(reason, (
                f"{store} refused the first {count} requests ({why}), so its rows are not read: check the "
                "bucket name, its permissions and the credentials"))
            self._stop_if_all_closed(store)

    def _stop_if_all_closed(self, store: str) -> None:
        if self._seen.issubset(self._closed):
            why = self._closed[store].detail.split(", so ", 1)[0]
            raise SourceAccessError(
                f"{why}: check the credentials (AWS_* / GOOGLE_APPLICATION_CREDENTIALS), --s3-endpoint "
                "and the bucket name."
            )
