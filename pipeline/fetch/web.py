"""``http(s)://`` sources through aiohttp, with the guards obstore's HTTP store cannot give.

Redirects are followed here, hop by hop (at most ``MAX_REDIRECTS``), and only to ``http``/``https``: a
redirect to ``file://`` or any other scheme is refused. No connection is ever made to a link-local or cloud
metadata address (``addresses.is_refused_address``: 169.254.0.0/16, fe80::/10, fd00:ec2::254, and their
IPv4-in-IPv6 forms), on the first hop or any redirect: every hop's literal address is checked before its
request (aiohttp connects to a literal without asking the resolver), and every name by the resolver each
time a connection is made, all the addresses it resolves to, so neither a DNS answer nor a redirect can
slip one past a check made earlier (aiohttp caches only answers that passed). No proxy is used
(``trust_env`` stays off), so the connection goes where the check looked. TLS verification stays on.
"""

from __future__ import annotations

import socket
import zlib
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from pipeline.fetch.addresses import is_refused_address
from pipeline.fetch.attempt import Claim, Failure, Sink, status_failure, too_large
from pipeline.fetch.outcomes import UNSTAMPED, FetchStats, SourceStamp
from pipeline.fetch.refs import SourceRef
from pipeline.pacing import Net, net_failure, parse_retry_after

__all__ = ["MAX_REDIRECTS", "AddressRefused", "WebClient"]

MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 1 << 20


class AddressRefused(OSError):
    """A host resolved to a link-local or cloud metadata address; no connection was made."""


class _SafeResolver(AbstractResolver):
    """``inner`` (default: the threaded system resolver), refusing a host when any of its addresses is
    refused (``is_refused_address``), so no connection is even tried to its other addresses."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if any(is_refused_address(r["host"]) for r in results):
            raise AddressRefused(f"{host} resolves to a link-local or cloud metadata address")
        return results

    async def close(self) -> None:
        await self._inner.close()


def _url(text: str) -> URL:
    # Keep a URL that is already valid byte for byte (a presigned query must not be re-encoded).
    plain = all(33 <= ord(c) < 127 for c in text)
    return URL(text, encoded=plain)


def _shown(url: URL) -> str:
    """The URL without query, fragment or credentials: what a detail may say."""
    bare = url.with_query(None).with_fragment(None)
    return str(bare.with_user(None) if bare.absolute else bare)


def _stamp(headers: Any, size: int | None) -> SourceStamp:
    if headers.get("ETag"):
        return SourceStamp(f"etag:{headers['ETag']}", size)
    if headers.get("Last-Modified") and size is not None:
        return SourceStamp(f"lm:{headers['Last-Modified']}:{size}", size)
    return SourceStamp(None, size)


class WebClient:
    """One aiohttp session for every ``http(s)://`` source of a run (connection pooling per host). ``resolver``
    answers names (default: the system's); the refusal of link-local and metadata addresses wraps it."""

    def __init__(self, connections: int, stats: FetchStats, resolver: AbstractResolver | None = None) -> None:
        trace = aiohttp.TraceConfig()

        async def counted(*_: object) -> None:
            stats.connections += 1  # every connection opened, so tests can prove a refusal opened none

        trace.on_connection_create_end.append(counted)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, resolver=_SafeResolver(resolver)),
            trace_configs=[trace],
            auto_decompress=False,  # the bytes as stored: a gzip Content-Encoding is not ours to undo
            headers={"Accept-Encoding": "identity"},
        )

    async def close(self) -> None:
        """Close the pooled connections."""
        await self._session.close()

    async def head(self, ref: SourceRef) -> SourceStamp | Failure:
        """The source's stamp from a HEAD request (redirects followed as for GET); ``UNSTAMPED`` when the
        answer has neither ETag nor Last-Modified (the row is then fetched and its sha256 decides)."""
        stamp = await self._request("HEAD", ref, None, None, 0)
        if isinstance(stamp, SourceStamp) and stamp.value is None:
            return SourceStamp(UNSTAMPED, stamp.size)
        return stamp

    async def stream(self, ref: SourceRef, sink: Sink, claim: Claim, max_bytes: int) -> SourceStamp | Failure:
        """Hand the body (decoded, when served with a gzip or deflate Content-Encoding) to ``sink`` in order
        and answer its stamp: a Content-Length over ``max_bytes`` is refused unread, a body growing (or
        decoding) past it is cut off; the body is read once ``claim`` holds its size (``max_bytes`` when not
        announced or encoded)."""
        return await self._request("GET", ref, sink, claim, max_bytes)

    async def _request(self, method: str, ref: SourceRef, sink: Sink | None, claim: Claim | None,
                       max_bytes: int) -> SourceStamp | Failure:
        url = _url(ref.url)
        for _ in range(MAX_REDIRECTS + 1):
            where = _shown(url)
            if url.scheme not in ("http", "https"):
                return Failure("unsupported_source", f"{ref.display} redirects to a {url.scheme}:// URL, "
                               "which is never followed")
            if url.host is None or is_refused_address(url.host):
                return Failure("unsupported_source", f"{where}: link-local and cloud metadata addresses "
                               "are refused")
            try:
                async with self._session.request(method, url, allow_redirects=False) as response:
                    if response.status in _REDIRECTS:
                        location = response.headers.get("Location")
                        if not location:
                            return Failure("fetch_failed", f"{where}: HTTP {response.status} without a Location")
                        url = url.join(_url(location))
                        continue
                    if response.status != 200:
                        after = parse_retry_after(response.headers.get("Retry-After"))
                        return status_failure(response.status, None, where, after)
                    if sink is None or claim is None:
                        return _stamp(response.headers, response.content_length)
                    return await _body(response, where, sink, claim, max_bytes)
            except (aiohttp.ClientError, ConnectionError) as exc:
                return _network_failure(exc, where)
        return Failure("fetch_failed", f"{ref.display}: more than {MAX_REDIRECTS} redirects")


_DECODED = {"gzip": 47, "x-gzip": 47, "deflate": 47}
"""Content-Encodings decoded, with zlib's ``wbits``: 32 + 15 reads a gzip or a zlib header alike."""


async def _body(response: aiohttp.ClientResponse, where: str, sink: Sink, claim: Claim,
                max_bytes: int) -> SourceStamp | Failure:
    size = response.content_length
    if size is not None and size > max_bytes:
        return too_large(where, max_bytes, size)
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity", *_DECODED):
        return Failure("unsupported_source", f"{where}: served with Content-Encoding {encoding[:40]!r}, "
                       "which is not decoded (gzip and deflate are)")
    decoder = zlib.decompressobj(_DECODED[encoding]) if encoding in _DECODED else None
    # A decoded body's size is unknown until it ends: hold the limit, then only what arrived.
    await claim.take(size if size is not None and decoder is None else max_bytes)
    received = produced = 0
    try:
        async for chunk in response.content.iter_chunked(_CHUNK):
            received += len(chunk)
            if decoder is not None:
                # Never more than the limit + 1 out of one chunk: a gzip bomb stops at the limit.
                chunk = decoder.decompress(chunk, max_bytes - produced + 1)
            produced += len(chunk)
            if produced > max_bytes:
                return too_large(where, max_bytes, None)
            sink(chunk)
        if decoder is not None:
            tail = decoder.flush(max_bytes - produced + 1)
            produced += len(tail)
            if produced > max_bytes:
                return too_large(where, max_bytes, None)
            sink(tail)
    except zlib.error:
        return Failure("fetch_failed", f"{where}: the body is not valid {encoding} (Content-Encoding)")
    if size is not None and received != size:
        return Failure("fetch_failed", f"{where}: {received} of {size} bytes arrived", retryable=True)
    if decoder is not None and not decoder.eof:
        return Failure("fetch_failed", f"{where}: the {encoding} body ends early", retryable=True)
    claim.fit(produced)
    # The stamp counts the bytes as served, as a HEAD's Content-Length does, so the two compare.
    return _stamp(response.headers, received)


def _network_failure(exc: aiohttp.ClientError | ConnectionError, where: str) -> Failure:
    """What a request that got no usable answer means for a web source (``pacing.net_failure`` says what
    kind of failure it was): a host aiohttp will not connect to (e.g. "2852039166") or a refused address is
    no retry's business; no connection or a broken one is worth another attempt."""
    kind = net_failure(exc)
    if kind is Net.INVALID_URL:
        return Failure("fetch_failed", f"{where}: not a URL the HTTP client accepts")
    if kind in (Net.NO_CONNECTION, Net.DNS, Net.TLS):
        os_error = getattr(exc, "os_error", None)
        if isinstance(os_error, AddressRefused) or isinstance(exc.__cause__, AddressRefused):
            return Failure("unsupported_source", f"{where}: resolves to a link-local or cloud metadata address, "
                           "which is refused")
        return Failure("fetch_failed", f"{where}: cannot connect ({type(exc).__name__})", retryable=True)
    return Failure("fetch_failed", f"{where}: no complete answer ({type(exc).__name__})", retryable=True)
