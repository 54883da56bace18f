"""The storage PUT to a presigned URL: once, sized, byte-exact, with a timeout that grows with the body."""

from __future__ import annotations

import asyncio
import io

import aiohttp
import structlog
from yarl import URL

from pipeline.client.responses import redact_url, s3_error
from pipeline.client.settings import ApiSettings
from pipeline.client.transport import map_network_error, no_resend
from pipeline.errors import FatalApiError, UploadError
from pipeline.models import Presigned
from pipeline.pacing import Net, net_failure
from pipeline.redaction import Redactor

__all__ = ["UnansweredPutError", "put_object"]

log = structlog.get_logger(__name__)


class UnansweredPutError(UploadError):
    """A PUT that got no answer after it may have been sent (a timeout, a connection that broke): the object
    may have been stored all the same, so the key's upload status is asked before a new round."""


async def put_object(
    session: aiohttp.ClientSession,
    settings: ApiSettings,
    redactor: Redactor,
    presigned: Presigned,
    data: bytes,
    content_type: str,
) -> None:
    """PUT ``data`` to ``presigned.url`` once, as S3 requires (``API.md``, "The upload itself").

    One request with a sized body, so an exact Content-Length (never chunked, no ``Expect``); the URL is
    sent byte for byte (``encoded=True``: re-encoding would break the signature); the only header is
    ``Content-Type``, the image's own type. Never sent twice: ``no_resend`` stops aiohttp's own re-send of
    an idempotent request on a broken connection. Times out after ``settings.put_timeout(len(data))``.

    Raises ``UploadError`` (``expired``/``retryable`` set; messages redacted, no URL query) for a failed
    PUT (``UnansweredPutError`` when it may have been stored though no answer came), and
    ``EndpointUnreachableError`` when TLS with the storage host fails (deterministic).
    """
    url = presigned.url
    timeout = aiohttp.ClientTimeout(total=settings.put_timeout(len(data)), sock_connect=settings.connect_timeout)
    try:
        # BytesIO, not bytes: still an exact Content-Length, but the loop gets turns between 64 KiB chunks.
        async with session.put(URL(url, encoded=True), data=io.BytesIO(data), headers={"Content-Type": content_type},
                               allow_redirects=False, timeout=timeout, middlewares=(no_resend,)) as resp:
            body = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise _put_failure(exc, url) from None
    if 200 <= status < 300:
        return
    error = s3_error(status, body, url, redactor=redactor)
    if error.code == "SignatureDoesNotMatch":
        log.error("put_signature_mismatch", url=redact_url(url), status=status,
                  hint="a client bug: the URL, Content-Type or headers sent differ from what was signed")
    raise error


def _put_failure(exc: BaseException, url: str) -> FatalApiError | UploadError:
    """What a PUT that got no answer means (``pacing.net_failure`` says what kind of failure it was): TLS is
    fatal (every row would fail the same way); no connection (nothing was sent) is a plain failed round;
    anything else is ambiguous (``UnansweredPutError``: the object may have been stored and only the answer
    lost, so the caller asks the key's status before it starts over from a new URL)."""
    kind = net_failure(exc)
    if kind is Net.TLS:
        error = map_network_error(exc, "put", url, answered=True)
        return error if isinstance(error, FatalApiError) else UploadError(str(error), retryable=False)
    if kind in (Net.NO_CONNECTION, Net.DNS):
        return UploadError(f"PUT {redact_url(url)}: {type(exc).__name__} (no connection)", retryable=True)
    return UnansweredPutError(f"PUT {redact_url(url)}: {type(exc).__name__} (no answer)")
