"""``ApiClient``: one aiohttp session, the two limiters, signed MI calls with retries, and the storage PUT."""

from __future__ import annotations

import asyncio
import io
import json
import random
import time
from types import SimpleNamespace, TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog
from yarl import URL

from pipeline.client.limiter import AdaptiveRate, Slot, StrictLimiter
from pipeline.client.responses import ClientStats, api_error, redact_url, s3_error
from pipeline.client.settings import ApiSettings
from pipeline.errors import (
    FatalApiError,
    RateLimitedError,
    RequestRejectedError,
    TransientError,
    UploadError,
)
from pipeline.logs import add_secret
from pipeline.models import Presigned, UploadCheck
from pipeline.signing import signed_headers

__all__ = ["NETWORK_ERRORS", "ApiClientBase"]

log = structlog.get_logger(__name__)

NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    asyncio.TimeoutError,
    aiohttp.ServerTimeoutError,
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
)
"""Failures with no usable answer: the call may or may not have been processed; retried (bounded)."""

PRESIGN_MARGIN = 0.008
"""Seconds of headroom on the 1 s presign window. The server counts *arrivals*, which lag our sends by a
varying delay (measured against the emulator in another process: median 0.3 ms, max ~6 ms; the client's
own acquire-to-send delay is at most ~1 ms), so 51 sends spaced exactly 1 s apart could arrive inside one
second. 8 ms covers that and costs 0.8 % of throughput (at most 49.6/s at a 50/s cap)."""


async def _headers_sent(
    _session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: aiohttp.TraceRequestHeadersSentParams
) -> None:
    """aiohttp trace hook: the request's headers are on the wire, so its limiter slot counts from now."""
    slot = getattr(ctx, "trace_request_ctx", None)
    if isinstance(slot, Slot):
        slot.mark_sent()


class ApiClientBase:
    """Session, limiters and the three calls; ``ApiClient`` adds the row-level ``upload``.

    Use as ``async with ApiClient(settings) as client``. Not thread-safe; one event loop.
    """

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        # The one place the secret is registered for redaction: every path that could leak it goes through here.
        add_secret(settings.credentials.secret_key)
        ws = quote(settings.workspace, safe="")
        base = settings.endpoint.rstrip("/")
        self._presign_url = URL(base + settings.presign_path.replace("{workspace}", ws), encoded=True)
        self._status_url = URL(base + settings.status_path.replace("{workspace}", ws), encoded=True)
        self.presign_limiter = StrictLimiter(settings.rate, 1.0, margin=PRESIGN_MARGIN)
        self.status_limiter = StrictLimiter(settings.confirm_rate, 60.0, margin=0.05)
        self.adaptive: AdaptiveRate | None = AdaptiveRate(self.presign_limiter) if settings.adaptive else None
        self.stats = ClientStats(current_rate=settings.rate)
        self._session: aiohttp.ClientSession | None = None
        self._fatal: FatalApiError | None = None
        self._verified = False
        self._gate: asyncio.Lock | None = None

    async def __aenter__(self) -> ApiClientBase:
        # limit: every row has at most one request in flight, so concurrency connections suffice; the few
        # extra keep a limiter slot from ever waiting on the pool (which would bunch sends up afterwards).
        connector = aiohttp.TCPConnector(limit=self.settings.concurrency + 4, limit_per_host=0)
        timeout = aiohttp.ClientTimeout(
            total=self.settings.request_timeout, sock_connect=self.settings.connect_timeout
        )
        trace = aiohttp.TraceConfig()
        trace.on_request_headers_sent.append(_headers_sent)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(), raise_for_status=False,
            trace_configs=[trace],
        )
        # aiohttp silently re-sends an idempotent request (PUT) once when a kept-alive connection drops; a
        # presigned URL is one-time, so every re-send must be ours, from a fresh presign.
        self._session._retry_connection = False
        self._gate = asyncio.Lock()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def fatal(self) -> FatalApiError | None:
        """The first fatal API answer of this client, if any (then every call raises it without I/O)."""
        return self._fatal

    def _raise_if_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session (only inside ``async with``)."""
        if self._session is None:
            raise RuntimeError("ApiClient is not open; use 'async with ApiClient(settings) as client'.")
        return self._session

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform(0, min(max, base * 2**(attempt-1)))."""
        cap = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (attempt - 1))
        return random.uniform(0.0, cap)

    async def presign(self, file_name: str) -> Presigned:
        """Issue one presigned upload URL for ``file_name`` (paced under ``settings.rate``).

        Retries 429 (honouring Retry-After), 5xx, timeouts and dropped connections up to
        ``settings.max_call_attempts`` tries. Raises ``FatalApiError`` (once per client, then immediately),
        ``RequestRejectedError`` (per-row 4xx) or the last ``RateLimitedError``/``TransientError``.
        """
        result = await self._call("presign", {"thumbnailFileName": file_name})
        key, url = result.get("thumbnailKey"), result.get("url")
        if not isinstance(key, str) or not key or not isinstance(url, str) or not url.startswith("http"):
            raise TransientError("presign: HTTP 200 without a usable thumbnailKey/url")
        try:
            ttl = float(result.get("expirationSeconds", 900))
        except (TypeError, ValueError):
            ttl = 900.0
        return Presigned(thumbnail_key=key, url=url, expires_at=time.time() + ttl)

    async def confirm(self, thumbnail_key: str) -> UploadCheck:
        """Ask the upload-status call about ``thumbnail_key`` (paced under ``settings.confirm_rate``/min).

        Same retries and exceptions as ``presign``. ``UploadCheck.completed`` is true for ``COMPLETED``;
        otherwise ``message`` carries ``uploadMessage`` (``FILE_NOT_EXIST``, ``OVER_SIZE_LIMIT``, ...).
        """
        result = await self._call("status", {"thumbnailKey": thumbnail_key})
        status = str(result.get("uploadStatus", "")).upper()
        message = result.get("uploadMessage")
        return UploadCheck(completed=status == "COMPLETED", message=None if message is None else str(message))

    async def _call(self, kind: str, payload: dict[str, str]) -> dict[str, Any]:
        """One signed MI call with bounded retries; returns ``result`` of a code-"0" answer."""
        attempts = self.settings.max_call_attempts
        gate = self._gate
        if gate is None:
            raise RuntimeError("ApiClient is not open; use 'async with ApiClient(settings) as client'.")
        for attempt in range(1, attempts + 1):
            self._raise_if_fatal()
            try:
                if self._verified:
                    return await self._attempt(kind, payload)
                # Until one call has shown the credentials work, calls go one at a time: a wrong key then
                # costs one request, not one per worker, and the rest raise the remembered error.
                async with gate:
                    self._raise_if_fatal()
                    return await self._attempt(kind, payload)
            except FatalApiError as exc:
                if self._fatal is None:
                    self._fatal = exc
                    log.error("fatal_api_error", call=kind, status=exc.status, code=exc.code, error=str(exc))
                raise self._fatal from None
            except RequestRejectedError:
                raise
            except RateLimitedError as exc:
                if attempt == attempts:
                    raise
                self.stats.retries["rate_limited"] += 1
                delay = exc.retry_after if exc.retry_after is not None else self._backoff(attempt)
                log.warning("rate_limited", call=kind, attempt=attempt, code=exc.code, retry_after=delay,
                            rate=round(self.presign_limiter.rate, 2))
                await asyncio.sleep(delay)
            except TransientError as exc:
                if attempt == attempts:
                    raise
                self.stats.retries["transient"] += 1
                delay = self._backoff(attempt)
                log.warning("retrying", call=kind, attempt=attempt, status=exc.status, error=str(exc),
                            delay=round(delay, 3))
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _attempt(self, kind: str, payload: dict[str, str]) -> dict[str, Any]:
        """Exactly one HTTP request (after a limiter slot); every outcome mapped to a result or exception."""
        presign = kind == "presign"
        limiter = self.presign_limiter if presign else self.status_limiter
        url = self._presign_url if presign else self._status_url
        slot = await limiter.take(abort=lambda: self._fatal is not None)
        if slot is None:
            self._raise_if_fatal()
            raise AssertionError("the limiter gave up without a fatal answer")  # pragma: no cover
        # Signed after the limiter so the timestamp is fresh on every attempt (and every retry).
        creds = self.settings.credentials
        headers = signed_headers("POST", url.raw_path_qs, creds.access_key, creds.secret_key)
        if presign:
            self.stats.presign_calls += 1
        else:
            self.stats.confirm_calls += 1
        try:
            # trace_request_ctx: _headers_sent dates the slot to the moment the request really goes out.
            async with self.session.post(url, data=json.dumps(payload).encode(), headers=headers,
                                         allow_redirects=False, trace_request_ctx=slot) as resp:
                body = await resp.read()
                status, retry_after = resp.status, resp.headers.get("Retry-After")
        except aiohttp.ClientSSLError as exc:
            raise RequestRejectedError(f"{kind}: TLS failure talking to {redact_url(str(url))}: "
                                       f"{type(exc).__name__}") from None
        except NETWORK_ERRORS as exc:
            raise TransientError(f"{kind}: {type(exc).__name__} talking to {redact_url(str(url))}") from None
        finally:
            slot.mark_sent()  # no-op when the trace hook already dated it; else (never sent) "now" is safe
        if status == 200:
            return self._success(kind, body)
        error = api_error(kind, status, body, retry_after)
        if not isinstance(error, FatalApiError) and status < 500:
            self._verified = True  # the gateway looked at our signature and let it pass
        if isinstance(error, RateLimitedError):
            self._throttled(limiter, error)
        raise error

    def _success(self, kind: str, body: bytes) -> dict[str, Any]:
        self._verified = True
        try:
            doc = json.loads(body)
        except ValueError:
            raise TransientError(f"{kind}: HTTP 200 with a body that is not JSON") from None
        if not isinstance(doc, dict):
            raise TransientError(f"{kind}: HTTP 200 with an unexpected body")
        code = str(doc.get("code", "0"))
        if code != "0":
            raise RequestRejectedError(f"{kind}: HTTP 200 code {code}", status=200, code=code)
        result = doc.get("result")
        if not isinstance(result, dict):
            raise TransientError(f"{kind}: HTTP 200 without a result object")
        if kind == "presign" and self.adaptive is not None:
            self.adaptive.on_success()
            self.stats.current_rate = self.adaptive.rate
        return result

    def _throttled(self, limiter: StrictLimiter, error: RateLimitedError) -> None:
        """A 429: pause this limiter for Retry-After (the cap is per key: every worker must wait) and, on
        presign, lower the pacing (AIMD) so a server whose real limit is lower stops answering 429."""
        self.stats.responses_429 += 1
        if error.retry_after is not None:
            limiter.pause_until(time.monotonic() + error.retry_after)
        if limiter is self.presign_limiter and self.adaptive is not None and self.adaptive.on_throttled():
            self.stats.current_rate = self.adaptive.rate

    async def put(self, presigned: Presigned, data: bytes, content_type: str) -> None:
        """PUT ``data`` to the presigned URL once, as S3 requires (``API.md``, "The upload itself").

        One request with a sized body, so aiohttp sends an exact Content-Length (never chunked, no
        ``Expect: 100-continue``); the URL is sent byte for byte (``encoded=True``: re-encoding would break
        the signature); headers are only ``Content-Type``, set to the image's own type -- the only value we
        know, and the one MI signs when it signs content-type -- and no ``x-amz-*`` header. No retry here
        (the URL is one-time): raises ``UploadError`` (``expired``/``retryable`` set) for any failure.
        """
        url = presigned.url
        self.stats.put_calls += 1
        try:
            async with self.session.put(
                URL(url, encoded=True),
                # BytesIO, not bytes: aiohttp still sends its exact Content-Length (a sized payload is never
                # chunked) but yields to the loop between 64 KiB chunks, and warns about raw bytes > 1 MiB.
                data=io.BytesIO(data),
                headers={"Content-Type": content_type},
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                status = resp.status
        except NETWORK_ERRORS as exc:
            # Ambiguous: the object may have been stored and only the answer lost. The caller starts over
            # from a new URL and records this key as a possible orphan.
            detail = f"PUT {redact_url(url)}: {type(exc).__name__} (no answer)"
            raise UploadError(detail, retryable=True) from None
        except aiohttp.ClientError as exc:
            raise UploadError(f"PUT {redact_url(url)}: {type(exc).__name__}", retryable=False) from None
        if 200 <= status < 300:
            return
        error = s3_error(status, body, url)
        if error.code == "SignatureDoesNotMatch":
            log.error("put_signature_mismatch", url=redact_url(url), status=status,
                      hint="a client bug: the URL, Content-Type or headers sent differ from what was signed")
        raise error

