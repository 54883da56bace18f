"""The HTTP transport under the client: the session, per-call timeouts, the PUT's no-resend guard, and the
one place foreign (aiohttp/asyncio) exceptions are mapped to ours (httpx's ``map_exceptions`` idea).
"""

from __future__ import annotations

import errno
from enum import Enum
from types import SimpleNamespace

import aiohttp
from yarl import URL

from pipeline.client.limiter import Slot
from pipeline.client.responses import PresignIncompleteError, redact_url
from pipeline.errors import ApiError, EndpointUnreachableError, TransientError
from pipeline.pacing import Net, net_failure

__all__ = [
    "ClientState",
    "ConnectionLostError",
    "NoAnswerError",
    "PresignIncompleteError",
    "host_of",
    "map_network_error",
    "new_session",
    "no_resend",
]


class ClientState(Enum):
    """Where the client stands with the endpoint; moves forward only (httpx's ``ClientState`` idea)."""

    SILENT = "silent"
    """Nothing answered yet: refused, DNS, TLS and redirects are fatal, and so is repeated silence."""
    ANSWERED = "answered"
    """The endpoint answered HTTP; calls still go one at a time until one passes authentication."""
    VERIFIED = "verified"
    """A call passed the gateway's signature check: calls go concurrently."""
    FATAL = "fatal"
    """A fatal answer was given: every call raises it without I/O."""


class NoAnswerError(TransientError):
    """A timeout: the server accepted (or never accepted) the connection and said nothing in time."""


class ConnectionLostError(aiohttp.ClientConnectionError):
    """The connection broke while a PUT was under way. Raised by ``no_resend`` in place of aiohttp's
    ``ServerDisconnectedError``/``ClientOSError`` so that aiohttp does not send the PUT again by itself."""


async def no_resend(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
    """aiohttp client middleware for PUTs to one-time URLs: a broken connection is never re-sent.

    aiohttp (3.14, ``ClientSession._request``) re-sends an idempotent request (PUT) once when the send
    fails with ``ClientOSError`` or ``ServerDisconnectedError``; other ``ClientError``s are raised as they
    are. Middlewares run inside that retry loop, so re-raising those two as ``ConnectionLostError`` (a
    ``ClientConnectionError`` that is neither) makes aiohttp give up, and the client starts over from a
    new presign instead. Connect errors (nothing was sent) pass unchanged.
    """
    try:
        return await handler(request)
    except aiohttp.ClientConnectorError:
        raise
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        raise ConnectionLostError(f"{type(exc).__name__}: the connection broke during the PUT") from exc


def _slot(ctx: SimpleNamespace) -> Slot | None:
    slot = getattr(ctx, "trace_request_ctx", None)
    return slot if isinstance(slot, Slot) else None


async def _headers_sent(
    _session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestHeadersSentParams
) -> None:
    """aiohttp trace hook, called as the headers are serialised: a request without a body goes out now, so
    its limiter slot counts from now. A request with a body is dated by ``_chunk_sent``: aiohttp holds the
    headers back to send them with the body, from a task that starts a loop iteration later (measured up to
    5 ms on a busy loop), and dating the slot here would count the call as sent before it is."""
    slot = _slot(ctx)
    if slot is not None and params.headers.get("Content-Length", "0") == "0" \
            and "Transfer-Encoding" not in params.headers:
        slot.mark_sent()


async def _chunk_sent(
    _session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: aiohttp.TraceRequestChunkSentParams
) -> None:
    """aiohttp trace hook, called just before a body chunk (with the held-back headers) is written to the
    socket: the request's slot counts from now (the first chunk dates it; later ones are no-ops)."""
    slot = _slot(ctx)
    if slot is not None:
        slot.mark_sent()


async def _answered(
    _session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: aiohttp.TraceRequestEndParams
) -> None:
    """aiohttp trace hook, called as the answer's status line and headers are in: the server counted the
    request before this moment, which bounds how late (``Slot.mark_answered``)."""
    slot = _slot(ctx)
    if slot is not None:
        slot.mark_answered()


def new_session(pool: int) -> aiohttp.ClientSession:
    """A session with a pool of ``pool`` connections, TLS verified (aiohttp's default context), no
    cookies, no automatic raising, and the trace hooks that date limiter slots to the real send and answer.
    Timeouts are given per request (API calls and PUTs differ)."""
    connector = aiohttp.TCPConnector(limit=pool, limit_per_host=0)
    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(_headers_sent)
    trace.on_request_chunk_sent.append(_chunk_sent)
    trace.on_request_end.append(_answered)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None), cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False, trace_configs=[trace],
    )


def host_of(url: URL | str) -> str:
    """``host[:port]`` of ``url`` (what a message may name: never a path's secrets or a query)."""
    u = url if isinstance(url, URL) else URL(url, encoded=True)
    port = f":{u.port}" if u.port is not None and not u.is_default_port() else ""
    return f"{u.host or '?'}{port}"


def map_network_error(
    exc: BaseException, what: str, url: URL | str, *, answered: bool
) -> ApiError | EndpointUnreachableError:
    """Our exception for a call that got no HTTP answer (``what`` names the call, e.g. ``presign``).

    TLS failures are deterministic: always ``EndpointUnreachableError``. Connection refused and DNS
    failures are too while the endpoint has never ``answered`` (afterwards they are a restart or a blip:
    ``TransientError``). Timeouts are ``NoAnswerError``; broken connections ``TransientError``.
    """
    host = host_of(url)
    kind = net_failure(exc)
    if kind is Net.TLS:
        reason = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", None) or exc
        if "WRONG_VERSION_NUMBER" in str(reason) or "record layer failure" in str(reason):
            # What OpenSSL says when the answer is not TLS at all: an https:// endpoint on a plain-HTTP port.
            return EndpointUnreachableError(f"TLS with {host} failed: the answer is not TLS, so the endpoint may "
                                            f"be plain HTTP; try --endpoint http://{host}.")
        return EndpointUnreachableError(
            f"TLS with {host} failed ({_short(reason)}); the certificate must verify (verification stays on)."
        )
    if kind is Net.TIMEOUT:
        return NoAnswerError(f"{what}: no answer from {host} in time ({type(exc).__name__})")
    if kind is Net.DNS:
        if not answered:
            return EndpointUnreachableError(f"The host {host} cannot be resolved (DNS); check --endpoint.")
        return TransientError(f"{what}: DNS lookup of {host} failed")
    if kind is Net.NO_CONNECTION and isinstance(exc, aiohttp.ClientConnectorError):
        if not answered:
            why = "connection refused" if exc.os_error.errno == errno.ECONNREFUSED else _short(exc.os_error)
            return EndpointUnreachableError(f"Cannot connect to {host} ({why}); check --endpoint and the network.")
        return TransientError(f"{what}: cannot connect to {host}")
    return TransientError(f"{what}: {type(exc).__name__} talking to {redact_url(str(url))}")


def _short(reason: object) -> str:
    text = " ".join(str(reason).split())
    return text if len(text) <= 160 else text[:159] + "…"
