"""``Fetcher``: the fetch stage. One per run; ``async with Fetcher(settings) as f: await f.fetch(ref)``.

Bounds, all from ``FetchSettings``: at most ``fetch_concurrency`` sources in flight; at most
``fetch_max_bytes_in_flight`` source bytes held at once (a ``ByteBudget`` reserved from the announced
size before a body is read, so memory stays flat whatever the concurrency; with ``fetch(ref, hold=True)`` the
bytes stay held until the caller releases them, e.g. once the image stage is done with them); ``source_max_bytes`` per
source, refused from its size before reading and cut off if the body grows past it; ``fetch_timeout``
per remote source, retries included; ``fetch_retries`` retries after 5xx, 429 (honouring Retry-After),
timeouts of a connection and dropped connections, through the tool's one ``pacing.Retrier`` (full jitter,
Retry-After obeyed up to ``max_backoff``; ``Fetcher._judge`` says what a failure means). A store that
refuses its first ``fatal_after`` requests (401/403, unknown bucket) with no success is closed: its rows are
rejected with a sentence naming it; when every store the run reads from is closed, ``SourceAccessError`` stops
the run (``limits.AccessGuard``). Per-source problems are data (``FetchRejected``); nothing else is raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import structlog
from aiohttp.abc import AbstractResolver

from pipeline.fetch.attempt import Claim, Failure
from pipeline.fetch.limits import AccessGuard, ByteBudget, SourceAccessError
from pipeline.fetch.outcomes import Fetched, FetchRejected, FetchStats, SourceStamp
from pipeline.fetch.refs import SourceRef
from pipeline.fetch.settings import FetchSettings
from pipeline.fetch.stores import ObjectStores, unreadable
from pipeline.fetch.web import WebClient
from pipeline.pacing import Policy, Retrier, Try, Verdict, fatal, give_up, retry

__all__ = ["Fetcher"]

log = structlog.get_logger("pipeline.fetch")

GUARDED = ("s3", "gs")
"""Schemes whose refusals judge the store (``AccessGuard``): a web host's 403 is about one URL, never the run."""

T = TypeVar("T", Fetched, SourceStamp)
Out = TypeVar("Out")
Sleep = Callable[[float], Awaitable[None]]


class Fetcher:
    """Fetches sources under the run's bounds. ``sleep`` (the backoff wait) and ``resolver`` (the names of web
    hosts; the link-local refusal always wraps it) can be injected by tests."""

    def __init__(self, settings: FetchSettings | None = None, *, sleep: Sleep = asyncio.sleep,
                 resolver: AbstractResolver | None = None) -> None:
        self.settings = settings or FetchSettings()
        self.stats = FetchStats()
        self.budget = ByteBudget(self.settings.fetch_max_bytes_in_flight)
        self._retrier = Retrier(Policy(self.settings.retry_backoff, self.settings.max_backoff,
                                       tries=self.settings.fetch_retries + 1), sleep=sleep)
        self._slots = asyncio.Semaphore(self.settings.fetch_concurrency)
        self._guard = AccessGuard(self.settings.fatal_after)
        self._stores = ObjectStores(self.settings)
        self._web: WebClient | None = None
        self._resolver = resolver

    async def __aenter__(self) -> Fetcher:
        self._web = WebClient(self.settings.fetch_concurrency, self.stats, self._resolver)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self.budget.peak:  # the high-water mark of source bytes held: what the run's memory was bounded by
            log.debug("byte_budget", budget="source", capacity=self.budget.capacity, peak=self.budget.peak)
        if self._web is not None:
            await self._web.close()
            self._web = None

    def saw(self, ref: SourceRef | None) -> None:
        """Record that the run reads from ``ref``'s store (``None``: a local file, read elsewhere), before any
        request: a store that refuses everything is then one store's fault, not the run's, and only its rows
        are rejected (see ``limits.AccessGuard``)."""
        self._guard.saw(ref.store if ref is not None else "file://")

    async def fetch(self, ref: SourceRef, *, hold: bool = False) -> Fetched | FetchRejected:
        """The source's bytes and stamp, or why not. With ``hold`` a remote source's bytes stay held in
        ``budget`` (``Fetched.lease``) until the caller releases the lease. Raises only ``SourceAccessError``
        (stop the run)."""
        _remote_only(ref)
        async with self._slots:
            outcome = await self._remote(ref, lambda: self._get(ref, hold))
        if isinstance(outcome, Fetched):
            self.stats.fetched += 1
            self.stats.bytes += outcome.size
        return outcome

    async def stat(self, ref: SourceRef) -> SourceStamp | FetchRejected:
        """The source's stamp without its bytes (one HEAD), or why not. Raises only ``SourceAccessError``."""
        _remote_only(ref)
        async with self._slots:
            return await self._remote(ref, lambda: self._head(ref))

    def _count(self, outcome: Out) -> Out:
        if isinstance(outcome, FetchRejected):
            self.stats.rejected[outcome.reason] = self.stats.rejected.get(outcome.reason, 0) + 1
        return outcome

    async def download(self, ref: SourceRef, path: Path, max_bytes: int) -> SourceStamp | FetchRejected:
        """Stream a remote source into the file ``path`` (rewritten on each attempt), at most ``max_bytes``;
        the same retries, timeout and guard as ``fetch``, outside the byte budget (the bytes go to disk)."""
        async with self._slots:
            return await self._remote(ref, lambda: self._to_file(ref, path, max_bytes))

    async def _to_file(self, ref: SourceRef, path: Path, max_bytes: int) -> SourceStamp | Failure:
        with path.open("wb") as fh:  # a fresh file per attempt: a retry never appends to a torn body
            return await self._transport(ref).stream(ref, fh.write, Claim(None), max_bytes)

    async def _get(self, ref: SourceRef, hold: bool) -> Fetched | Failure:
        chunks: list[bytes] = []
        claim = Claim(self.budget)
        try:
            stamp = await self._transport(ref).stream(ref, chunks.append, claim, self.settings.source_max_bytes)
            if isinstance(stamp, Failure):
                return stamp
            data = b"".join(chunks)
            chunks.clear()
            claim.fit(len(data))
            if not hold:
                return Fetched(data, len(data), stamp)
            lease, claim.lease = claim.lease, None  # handed on: the caller releases it
            return Fetched(data, len(data), stamp, lease)
        finally:
            claim.release()  # a failure, a cancellation, or bytes not held by the caller

    def _transport(self, ref: SourceRef) -> WebClient | ObjectStores:
        return self._client() if ref.scheme in ("http", "https") else self._stores

    def _head(self, ref: SourceRef) -> Awaitable[SourceStamp | Failure]:
        if ref.scheme in ("http", "https"):
            return self._client().head(ref)
        return self._stores.head(ref)

    def _client(self) -> WebClient:
        if self._web is None:
            raise RuntimeError("use the Fetcher as `async with Fetcher(settings) as fetcher:`")
        return self._web

    async def _remote(self, ref: SourceRef, attempt: Callable[[], Awaitable[T | Failure]]) -> T | FetchRejected:
        timeout = self.settings.fetch_timeout
        try:
            async with asyncio.timeout(timeout):
                return self._count(await self._attempts(ref, attempt))
        except TimeoutError:
            late = FetchRejected("fetch_failed", f"{ref.display}: no complete answer within {timeout:g} s")
            return self._count(late)

    async def _attempts(self, ref: SourceRef, attempt: Callable[[], Awaitable[T | Failure]]) -> T | FetchRejected:
        guarded = ref.scheme in GUARDED
        if guarded and (refused := unreadable(ref)) is not None:  # no request can read it: say why, at once
            return FetchRejected(refused.reason, refused.detail)

        async def one() -> T:
            if not guarded:
                self._guard.saw(ref.store)
            elif (closed := self._guard.check(ref.store)) is not None:
                raise _Rejected(FetchRejected(closed.reason, closed.detail))
            self.stats.requests += 1
            outcome = await attempt()
            if guarded:
                self._judge_store(ref.store, outcome)
            if isinstance(outcome, Failure):
                raise _Failed(outcome)
            return outcome

        try:
            return await self._retrier.call(one, partial(self._judge, ref))
        except _Rejected as rejected:
            return rejected.rejected

    def _judge_store(self, store: str, outcome: object) -> None:
        """Tell the guard what an object store's answer proves: access (an object, a plain not-found) or a
        refusal (which may close the store, or stop the run: ``SourceAccessError``)."""
        if not isinstance(outcome, Failure) or outcome.proves_access:
            self._guard.succeeded(store)
        elif outcome.refusal is not None:
            self._guard.refused(store, outcome.refusal, outcome.reason)

    def closed(self, ref: SourceRef) -> FetchRejected | None:
        """Before ``ref`` is read elsewhere (an engine whose workers fetch): its row's rejection when its store is
        closed (the store is counted as one the run reads from either way). Raises ``SourceAccessError`` when
        every store the run reads from is closed."""
        if ref.scheme not in GUARDED:
            self._guard.saw(ref.store)
            return None
        closed = self._guard.check(ref.store)
        return None if closed is None else FetchRejected(closed.reason, closed.detail)

    def judge(self, ref: SourceRef, refused: FetchRejected | None) -> None:
        """What a read of ``ref`` done elsewhere proves about its store, as if this ``Fetcher`` had made it:
        ``None`` (the bytes came back) or a rejection that ``proves_access`` trust the store; a ``refusal``
        counts toward closing it. Raises ``SourceAccessError`` when that closes the last open store: a worker
        sees only its own rows, so the run's verdict is the driver's."""
        if ref.scheme not in GUARDED:
            return
        if refused is None:
            self._guard.succeeded(ref.store)
        else:
            self._judge_store(ref.store, Failure(refused.reason, refused.detail, refusal=refused.refusal,
                                                 proves_access=refused.proves_access))

    def _judge(self, ref: SourceRef, exc: Exception, attempt: Try) -> Verdict:
        """What a failed attempt means: a retryable failure (5xx, 429, a timeout, a drop) is tried again after
        the one pause rule (the server's Retry-After, else full jitter; never above ``max_backoff``) while
        ``fetch_retries`` last; any other, or the last, rejects the row (saying how many attempts were made);
        every store closed stops the run; a closed store's rejection, or a bug, is raised as it is."""
        if isinstance(exc, SourceAccessError):
            return fatal()
        if not isinstance(exc, _Failed):
            return give_up()
        failure = exc.failure
        if not failure.retryable:
            return give_up(_Rejected(FetchRejected(failure.reason, failure.detail, failure.refusal,
                                                   failure.proves_access)))
        if attempt.last:
            tries = "1 attempt" if attempt.number == 1 else f"{attempt.number} attempts"
            return give_up(_Rejected(FetchRejected(failure.reason, f"{failure.detail}, after {tries}")))
        self.stats.retries += 1
        delay = attempt.pause(failure.retry_after)
        # The detail names the source by its display form: never a query string or a signature.
        log.info("fetch_retry", source=ref.display, attempt=attempt.number, detail=failure.detail,
                 wait_s=round(delay, 3))
        return retry(delay)


class _Failed(Exception):
    """One attempt's ``Failure``, raised for the retrier's judge (``Fetcher._judge``)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.detail)
        self.failure = failure


class _Rejected(Exception):
    """The row's rejection, which ends its attempts (a closed store, a failure no retry helps, the last)."""

    def __init__(self, rejected: FetchRejected) -> None:
        super().__init__(rejected.detail)
        self.rejected = rejected


def _remote_only(ref: SourceRef) -> None:
    """Local files are never fetched: the image stage reads them, in one place (``images.stage``), with one
    set of reasons."""
    if ref.is_local:
        raise ValueError(f"{ref.url} is a local file: the image stage reads it, the fetcher does not")
