"""One attempt's failure, as the transports report it to the ``Fetcher``'s retry loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.fetch.budget import ByteBudget, Lease

__all__ = ["Claim", "Failure", "Sink", "size_text", "status_failure", "too_large"]

Sink = Callable[[bytes], object]
"""Receives a body's chunks in order (a collector in memory, or a file's ``write``)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """An attempt that did not produce the bytes.

    ``reason``/``detail`` become the row's ``FetchRejected`` if this is the last attempt; ``retryable``
    says whether another attempt may help (5xx, 429, a dropped connection); ``retry_after`` is the
    server's Retry-After in seconds; ``refusal`` (e.g. ``403 AccessDenied``) marks an answer that counts
    toward stopping the run, ``proves_access`` one that shows the credentials and bucket work.
    """

    reason: str
    detail: str
    retryable: bool = False
    retry_after: float | None = None
    refusal: str | None = None
    proves_access: bool = False


def status_failure(status: int, code: str | None, where: str, retry_after: float | None = None) -> Failure:
    """The failure an HTTP ``status`` (with an object-store error ``code``) means for the source ``where``."""
    answer = f"HTTP {status}" + (f" {code}" if code else "")
    if status == 404:
        if code == "NoSuchBucket":
            return Failure("not_found", f"{where}: the bucket does not exist ({answer})", refusal=answer)
        return Failure("not_found", f"{where} does not exist ({answer})", proves_access=code == "NoSuchKey")
    if status in (401, 403):
        return Failure("access_denied", f"{where}: access denied ({answer})", refusal=answer)
    if status == 429 or status >= 500:
        return Failure("fetch_failed", f"{where}: {answer}", retryable=True, retry_after=retry_after)
    return Failure("fetch_failed", f"{where}: {answer}")


def too_large(where: str, max_bytes: int, size: int | None) -> Failure:
    """``source_too_large``: by its announced ``size``, or (``None``) a body that grew past ``max_bytes``.
    Proves access: the store answered with the object."""
    limit = size_text(max_bytes)
    if size is None:
        return Failure("source_too_large", f"{where}: more than {limit}, the limit", proves_access=True)
    return Failure("source_too_large", f"{where}: {size_text(size)}; the limit is {limit}", proves_access=True)


def size_text(nbytes: int) -> str:
    """``1.5 MB`` (decimal, like the image stage), or ``1000 bytes`` below 0.1 MB."""
    return f"{nbytes / 1e6:.1f} MB" if nbytes >= 100_000 else f"{nbytes} bytes"


class Claim:
    """The bytes one attempt holds in the fetch budget: taken (``take``) before a body is read, trimmed
    (``fit``) to what arrived, then handed on with the bytes (``lease``) or given back (``release``). Without a
    budget (a download to disk) it holds nothing."""

    def __init__(self, budget: ByteBudget | None) -> None:
        self._budget = budget
        self.lease: Lease | None = None

    async def take(self, nbytes: int) -> None:
        """Wait for ``nbytes`` of the budget (clipped to its capacity) and hold them."""
        if self._budget is not None:
            self.release()
            self.lease = await self._budget.acquire(nbytes)

    def fit(self, nbytes: int) -> None:
        """Hold no more than ``nbytes`` (the body turned out smaller than reserved)."""
        if self.lease is not None:
            self.lease.shrink(nbytes)

    def release(self) -> None:
        """Give back whatever is held."""
        if self.lease is not None:
            self.lease.release()
            self.lease = None
