"""``ApiClientBase``: one aiohttp session, the two limiters, signed MI calls retried by time through the
client's ``pacing.Retrier`` (presign, status, and any other ``Route`` through ``signed_call``; ``_judge`` says
what a failure means), and the storage PUT. ``ApiClient`` (``rows``) adds preflight and the row-level
``upload``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from functools import partial
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog
from yarl import URL

from pipeline.client.aimd import AdaptiveRate
from pipeline.client.limiter import Clock, Sleep, StrictLimiter
from pipeline.client.responses import ClientStats, api_error, ok_result, presigned_from, redact_url
from pipeline.client.retry import SILENT_STRIKES, CallJudge
from pipeline.client.routes import PRESIGN_MARGIN, NotFoundStrikes, Route, workspace_404
from pipeline.client.settings import ApiSettings
from pipeline.client.stopping import Halt
from pipeline.client.storage import put_object
from pipeline.client.transport import ClientState, host_of, map_network_error, new_session
from pipeline.errors import EndpointUnreachableError, FatalApiError, RateLimitedError
from pipeline.models import Presigned
from pipeline.pacing import Policy, Retrier, Try, Verdict
from pipeline.redaction import Redactor
from pipeline.signing import signed_headers

__all__ = ["PRESIGN_MARGIN", "SILENT_STRIKES", "ApiClientBase", "Route"]

log = structlog.get_logger(__name__)

STATUS_404_STRIKES = 3
"""Status calls answered 404 in a row, with none ever answered 200, after which the path is wrong (fatal)."""


class ApiClientBase:
    """Session, limiters, preflight and the three calls. Use as ``async with ApiClient(settings)``.

    ``clock``/``sleep`` (monotonic seconds; default ``time.monotonic``/``asyncio.sleep``) drive the
    limiters, backoff, the retry window and the outage budget; tests inject a fake pair. Not thread-safe.
    """

    def __init__(self, settings: ApiSettings, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self.settings = settings
        self.clock, self._sleep = clock, sleep
        self.redactor = Redactor([settings.credentials.secret_key])
        ws = quote(settings.workspace, safe="")
        base = self._base = settings.endpoint.rstrip("/")
        self._presign_url = URL(base + settings.presign_path.replace("{workspace}", ws), encoded=True)
        self._status_url = URL(base + settings.status_path.replace("{workspace}", ws), encoded=True)
        self.presign_limiter = StrictLimiter(settings.rate, 1.0, margin=PRESIGN_MARGIN, clock=clock, sleep=sleep)
        # No even pacing for status calls: the cap is 1,000 in any 60 s, usable from the first call.
        self.status_limiter = StrictLimiter(settings.confirm_rate, 60.0, margin=0.05, pace=False, clock=clock,
                                            sleep=sleep)
        self.adaptive = AdaptiveRate(self.presign_limiter, clock=clock) if settings.adaptive else None
        self._presign_route = Route("presign", "POST", self.presign_limiter, self.adaptive, workspace_404,
                                    counter="presign_calls")
        # A 429 on a status call shows the presign limiter: both MI calls share the gateway's per-key count.
        self._status_route = Route("status", "POST", self.status_limiter, counter="confirm_calls",
                                   shown=self.presign_limiter, not_found=NotFoundStrikes(STATUS_404_STRIKES, "status"))
        self._more_limiters: list[StrictLimiter] = []
        self.stats = ClientStats(current_rate=settings.rate)
        self.state = ClientState.SILENT
        self._session: aiohttp.ClientSession | None = None
        self._fatal: FatalApiError | None = None
        self._gate = asyncio.Lock()
        self._stopped = asyncio.Event()
        self._halt = Halt(settings.stop_grace, sleep)
        self._calls = CallJudge(settings, host_of(self._presign_url), self.stats)
        # One retrier for every signed call: retried by time (``retry_window``), each call on its own clock.
        self._retrier = Retrier(Policy(settings.backoff_base, settings.backoff_max, window=settings.retry_window),
                                clock=clock, sleep=self._wait, on_fatal=self._stop_run)
        self._api_timeout = aiohttp.ClientTimeout(
            total=settings.connect_timeout + settings.read_timeout, sock_connect=settings.connect_timeout,
            sock_read=settings.read_timeout)

    async def __aenter__(self) -> ApiClientBase:
        # Every row has at most one request in flight; the few extra keep a slot from waiting on the pool.
        self._session = new_session(self.settings.concurrency + 4)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._halt.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def fatal(self) -> FatalApiError | None:
        """The first fatal answer of this client, if any (then every call raises it without I/O)."""
        return self._fatal

    def halt(self) -> None:
        """The run is interrupted: every wait of a row holding no key ends now (``upload`` raises
        ``RowInterrupted``); rows holding a key get ``settings.stop_grace`` seconds more. Idempotent."""
        self._halt.start()

    @property
    def halted(self) -> asyncio.Event:
        """Set at ``halt()`` (the run is interrupted): work holding no key ends now (``stopping.until``)."""
        return self._halt.now

    @property
    def grace_over(self) -> asyncio.Event:
        """Set once the run was interrupted and ``settings.stop_grace`` has run out: work holding a key (a PUT,
        a status, an attach) is left for the next run."""
        return self._halt.late

    def _raise_if_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    def _set_fatal(self, exc: FatalApiError, call: str) -> FatalApiError:
        """Remember the first fatal error, end every wait (limiters closed) and return the one to raise."""
        if self._fatal is None:
            self._fatal, self.state = exc, ClientState.FATAL
            self._stopped.set()
            self.presign_limiter.close()
            self.status_limiter.close()
            for limiter in self._more_limiters:
                limiter.close()
            # Logged at debug: the run logs the one fatal_api_error event a person acts on (RunControl.fail).
            log.debug("client_stopped", call=call, status=exc.status, code=exc.code, error_type=type(exc).__name__)
        return self._fatal

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session (only inside ``async with``)."""
        if self._session is None:
            raise RuntimeError("ApiClient is not open; use 'async with ApiClient(settings) as client'.")
        return self._session

    def _stop_run(self, exc: Exception) -> Exception:
        """A fatal verdict of the retrier: the client's first fatal error (``exc`` unless one came before)."""
        return self._set_fatal(exc, "call") if isinstance(exc, FatalApiError) else exc

    async def _wait(self, seconds: float) -> None:
        """Sleep on the injected clock; ends at once on cancellation and raises at once on a fatal stop."""
        if seconds > 0:
            sleeper = asyncio.ensure_future(self._sleep(seconds))
            stopper = asyncio.ensure_future(self._stopped.wait())
            try:
                await asyncio.wait((sleeper, stopper), return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                stopper.cancel()
        self._raise_if_fatal()

    def _check_redirect(self, what: str, status: int, location: str) -> None:
        if 300 <= status < 400:
            raise self._set_fatal(EndpointUnreachableError(
                f"{host_of(self._presign_url)} answers {what} with a redirect (HTTP {status} to "
                f"{redact_url(location) or 'nowhere'}); set --endpoint to the API's own address.", status=status,
            ), what)

    async def presign(self, file_name: str) -> Presigned:
        """Issue one presigned upload URL for ``file_name`` (paced under ``settings.rate``).

        429, 5xx, timeouts and dropped connections are retried for up to ``retry_window`` seconds (429
        pauses the shared limiter for every worker). Raises ``FatalApiError`` (remembered), a
        ``RequestRejectedError`` (per row), ``PresignIncompleteError`` (200 without a url), or the last
        ``RateLimitedError``/``TransientError`` once the window is spent.
        """
        result = await self._call(self._presign_route, self._presign_url, {"thumbnailFileName": file_name})
        return presigned_from(result)

    async def status(self, thumbnail_key: str) -> tuple[str, str | None]:
        """One answered upload-status call: ``(uploadStatus upper-cased, uploadMessage)``; same retries and
        exceptions as ``presign``."""
        result = await self._call(self._status_route, self._status_url, {"thumbnailKey": thumbnail_key})
        message = result.get("uploadMessage")
        return str(result.get("uploadStatus", "")).upper(), None if message is None else str(message)

    def new_limiter(self, rate: float, period: float, *, margin: float = 0.0) -> StrictLimiter:
        """A paced ``StrictLimiter`` on this client's clock and sleep, closed with the client's own on a fatal
        stop: the limiter of a further ``Route``."""
        limiter = StrictLimiter(rate, period, margin=margin, clock=self.clock, sleep=self._sleep)
        self._more_limiters.append(limiter)
        if self._fatal is not None:
            limiter.close()
        return limiter

    async def signed_call(
        self, route: Route, path_and_query: str, payload: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """One signed ``route.method`` call to the endpoint + ``path_and_query`` (already percent-encoded: sent
        and signed byte for byte), ``payload`` as its JSON body when given; returns the ``result`` of a
        code-"0" answer (``{}`` when absent and not ``route.result_required``).

        Shares everything with ``presign``: the session, the first-call gate, the fatal state, the outage
        budget and the retry rules (429 pauses ``route.limiter``; 429/5xx/timeouts/drops retried for up to
        ``retry_window``). Raises what ``presign`` raises.
        """
        return await self._call(route, URL(self._base + path_and_query, encoded=True), payload)

    async def _call(self, route: Route, url: URL, payload: Mapping[str, Any] | None) -> dict[str, Any]:
        """One signed MI call, retried by the client's retrier as ``_judge`` says; returns ``result`` of a
        code-"0" answer."""

        async def attempt() -> dict[str, Any]:
            self._raise_if_fatal()
            result = await self._gated_attempt(route, url, payload)
            self._calls.succeeded()
            return result

        return await self._retrier.call(attempt, partial(self._judge, route))

    def _judge(self, route: Route, exc: Exception, attempt: Try) -> Verdict:
        """What a failed try of ``route`` means (``CallJudge.judge``, told whether the endpoint ever answered)."""
        return self._calls.judge(route, exc, attempt, no_answer_yet=self.state is ClientState.SILENT,
                                 now=self.clock())

    async def _gated_attempt(self, route: Route, url: URL, payload: Mapping[str, Any] | None) -> dict[str, Any]:
        """``_attempt``, one at a time until a call has passed authentication: a wrong key costs one request,
        not one per worker. The calls that waited at the gate while one passed then go on together (each
        waiting there for the one before it to be answered would serialise a whole worker pool's first
        calls: 32 round trips at the start of every run). Only the attempt is gated, never a backoff."""
        if not self._verified():
            async with self._gate:
                self._raise_if_fatal()
                if not self._verified():  # read again: another call may have passed while this one waited
                    return await self._attempt(route, url, payload)
        return await self._attempt(route, url, payload)

    def _verified(self) -> bool:
        return self.state is ClientState.VERIFIED

    async def _attempt(self, route: Route, url: URL, payload: Mapping[str, Any] | None) -> dict[str, Any]:
        """Exactly one HTTP request (after a limiter slot); every outcome mapped to a result or exception."""
        kind, limiter = route.kind, route.limiter
        slot = await limiter.take()
        if slot is None:
            self._raise_if_fatal()
            raise AssertionError("the limiter was closed without a fatal answer")  # pragma: no cover
        # Whatever happens from here on, the slot is dated and answered: until then it counts as in the
        # window, and ``limit`` such slots would close the window for good.
        try:
            # Signed after the limiter so the timestamp is fresh on every attempt (and every retry).
            creds = self.settings.credentials
            headers = signed_headers(route.method, url.raw_path_qs, creds.access_key, creds.secret_key)
            if route.counter is not None:
                setattr(self.stats, route.counter, getattr(self.stats, route.counter) + 1)
            data = None if payload is None else json.dumps(payload).encode()
            # trace_request_ctx: the trace hooks date the slot to the moments its bytes go out and its answer
            # comes in.
            async with self.session.request(route.method, url, data=data, headers=headers,
                                            allow_redirects=False, timeout=self._api_timeout,
                                            trace_request_ctx=slot) as resp:
                body = await resp.read()
                status, retry_after = resp.status, resp.headers.get("Retry-After")
                location = resp.headers.get("Location", "")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise map_network_error(exc, kind, url, answered=self.state is not ClientState.SILENT) from None
        finally:
            slot.mark_answered()  # no-op when the trace hooks already dated it; else (never sent) "now" is safe
        self._check_redirect(kind, status, location)
        if self.state is ClientState.SILENT:
            self.state = ClientState.ANSWERED
        if status == 200:
            return self._success(route, body)
        error = api_error(kind, status, body, retry_after, redactor=self.redactor)
        if route.classify is not None:
            error = route.classify(error)
        if not isinstance(error, FatalApiError) and status < 500 and self.state is ClientState.ANSWERED:
            self.state = ClientState.VERIFIED  # the gateway looked at our signature and let it pass
        if isinstance(error, RateLimitedError):
            self._throttled(route, error)
        if status == 404 and route.not_found is not None:
            error = route.not_found.missed(error)
        raise error

    def _success(self, route: Route, body: bytes) -> dict[str, Any]:
        if self.state is not ClientState.FATAL:
            self.state = ClientState.VERIFIED
        result = ok_result(route.kind, body, result_required=route.result_required)
        route.answered()
        self._show_rate()
        return result

    def _throttled(self, route: Route, error: RateLimitedError) -> None:
        """A 429: counted, and the route pauses its limiter for everyone and lowers its pacing
        (``Route.throttled``: Retry-After up to ``max_retry_after``, else a backoff growing with the streak)."""
        self.stats.responses_429 += 1
        settings = self.settings
        route.throttled(error, now=self.clock(), base=settings.backoff_base, cap=settings.backoff_max,
                        longest=settings.max_retry_after)
        self._show_rate()

    def _show_rate(self) -> None:
        """The stats show the presign pacing AIMD applies now."""
        if self.adaptive is not None:
            self.stats.current_rate = self.adaptive.rate

    async def put(self, presigned: Presigned, data: bytes, content_type: str) -> None:
        """PUT ``data`` to the presigned URL exactly once (``storage.put_object``). Raises ``UploadError``
        for a failed PUT and ``EndpointUnreachableError`` (fatal, remembered) when the storage host's TLS
        fails, since every row would fail the same way."""
        self.stats.put_calls += 1
        try:
            await put_object(self.session, self.settings, self.redactor, presigned, data, content_type)
        except FatalApiError as exc:
            raise self._set_fatal(exc, "put") from None
