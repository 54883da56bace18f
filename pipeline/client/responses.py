"""Turning HTTP answers into results or exceptions; URL redaction; the client's counters.

Pure functions (no I/O), so every body shape and status is unit-tested without a server.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import (
    ApiError,
    AuthenticationError,
    FatalApiError,
    PermissionDeniedError,
    QuotaExhaustedError,
    RateLimitedError,
    RequestRejectedError,
    TransientError,
    UploadError,
)
from pipeline.models import Presigned
from pipeline.pacing import parse_retry_after
from pipeline.redaction import Redactor

__all__ = [
    "RETRY_KINDS",
    "ClientStats",
    "PresignIncompleteError",
    "api_error",
    "error_fields",
    "ok_result",
    "presigned_from",
    "redact_url",
    "s3_error",
]

RETRY_KINDS = ("rate_limited", "transient", "expired", "put_failed", "file_not_exist", "in_progress")
_MAX_MESSAGE = 200
_PLAIN = Redactor()


@dataclass
class ClientStats:
    """What the client did, for the run summary. Call counts are HTTP attempts actually sent."""

    presign_calls: int = 0
    put_calls: int = 0
    confirm_calls: int = 0
    responses_429: int = 0
    retries: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RETRY_KINDS, 0))
    """Retries by kind: ``rate_limited``, ``transient``, ``expired``, ``put_failed``, ``file_not_exist``,
    ``in_progress`` (a status asked again because it was not final yet)."""
    current_rate: float = 0.0
    """The presign rate (calls/s) the adaptive limiter is applying now; 0 = unlimited."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy."""
        return {
            "presign_calls": self.presign_calls,
            "put_calls": self.put_calls,
            "confirm_calls": self.confirm_calls,
            "responses_429": self.responses_429,
            "retries": dict(self.retries),
            "current_rate": round(self.current_rate, 3),
        }


def ok_result(kind: str, body: bytes, *, result_required: bool = True) -> dict[str, Any]:
    """The ``result`` object of an HTTP 200 answer to a ``kind`` call.

    Raises ``TransientError`` for a body that is not a JSON object or (when ``result_required``) has no
    ``result`` object, and ``RequestRejectedError`` for a code other than "0"; a missing result is ``{}``
    when not required."""
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
    if result is None and not result_required:
        result = {}
    if not isinstance(result, dict):
        raise TransientError(f"{kind}: HTTP 200 without a result object")
    return result


class PresignIncompleteError(TransientError):
    """Presign answered 200 without a usable ``url``; ``thumbnail_key`` (if any) is an orphan to journal."""

    def __init__(self, message: str, thumbnail_key: str | None) -> None:
        super().__init__(message, status=200)
        self.thumbnail_key = thumbnail_key


def presigned_from(result: dict[str, Any]) -> Presigned:
    """The ``Presigned`` of a presign ``result``; ``PresignIncompleteError`` (transient, carrying the key as
    an orphan when there is one) when it lacks a key or an http(s) URL. A bad ``expirationSeconds`` is 900."""
    key, url = result.get("thumbnailKey"), result.get("url")
    if not isinstance(key, str) or not key or not isinstance(url, str) or not url.startswith("http"):
        orphan = key if isinstance(key, str) and key else None
        raise PresignIncompleteError("presign: HTTP 200 without a usable url", orphan)
    try:
        ttl = float(result.get("expirationSeconds", 900))
    except (TypeError, ValueError):
        ttl = 900.0
    return Presigned(thumbnail_key=key, url=url, expires_at=time.time() + ttl)


def redact_url(url: str) -> str:
    """``scheme://host[:port]/path``, with any query replaced by ``?<redacted>`` (and userinfo dropped).

    A presigned URL's query is a bearer credential (X-Amz-Signature, X-Amz-Credential, tokens): it never
    goes into a log, a message or a results file.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable url>"
    base = f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else parts.path
    return f"{base}?<redacted>" if parts.query else base


def _clean(text: str | None, redactor: Redactor = _PLAIN) -> str | None:
    """A server-supplied string made safe for messages: one line, secrets and signatures cut, bounded.

    Redacted before it is cut, so a signature split by the cut cannot survive as a fragment."""
    if text is None:
        return None
    text = redactor.text(" ".join(str(text).split()))
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 1] + "…"
    return text


def error_fields(body: bytes, redactor: Redactor = _PLAIN) -> tuple[str | None, str | None]:
    """``(code, message)`` from an MI body ``{"code", "message"}`` or a gateway body
    ``{"error": {"errorCode", "message", "details"}}``; ``(None, None)`` for anything else (HTML, empty).
    The message is redacted with ``redactor`` (servers echo signatures and keys back)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(doc, dict):
        return None, None
    inner = doc.get("error")
    if isinstance(inner, dict):
        code = inner.get("errorCode", inner.get("code"))
        message = inner.get("message")
        details = inner.get("details")
        if details and message:
            message = f"{message} ({details})"
        elif details:
            message = details
    else:
        code, message = doc.get("code"), doc.get("message")
    return (None if code is None else str(code)), _clean(None if message is None else str(message), redactor)


def api_error(
    what: str, status: int, body: bytes, retry_after: str | None = None, *, redactor: Redactor = _PLAIN
) -> ApiError | FatalApiError:
    """The exception for a non-success MI answer (``what`` names the call in the message).

    Fatal only when the answer is about the credentials or the quota: 401 (code 200 or none) ->
    AuthenticationError; 401 code 210/230 and 403 code 210/230 -> PermissionDeniedError; 429 code 400 ->
    QuotaExhaustedError. Retryable: 429 (410/420/none) -> RateLimitedError, 5xx/408 -> TransientError.
    Everything else -- a 403 without those codes (a firewall rule on one file name), a 404 (one unknown key;
    a route whose 404 means the workspace makes it fatal: ``Route.classify``), other 4xx ->
    RequestRejectedError: that row fails with its reason, no retry.
    """
    code, message = error_fields(body, redactor)
    text = f"{what}: HTTP {status}" + (f" code {code}" if code else "") + (f": {message}" if message else "")
    if status == 401 and code not in ("210", "230"):
        return AuthenticationError(
            text + " (check the access key, the secret key and the clock)", status=status, code=code
        )
    if status == 401 or (status == 403 and code in ("210", "230")):
        return PermissionDeniedError(
            text + " (check that this key may use Media Intelligence and this workspace)", status=status, code=code
        )
    if status == 429 and code == "400":
        return QuotaExhaustedError(
            text + " (the account's API quota is used up; re-run once it is restored, the journal resumes)",
            status=status, code=code,
        )
    if status == 429:
        return RateLimitedError(text, status=status, code=code, retry_after=parse_retry_after(retry_after))
    if status >= 500 or status == 408:
        return TransientError(text, status=status, code=code)
    return RequestRejectedError(text, status=status, code=code)


_XML_FIELD = re.compile(r"<(Code|Message)>(.*?)</\1>", re.DOTALL)


def s3_error(status: int, body: bytes, url: str, *, redactor: Redactor = _PLAIN) -> UploadError:
    """The ``UploadError`` for a failed storage PUT, from S3's ``<Error><Code/><Message/></Error>``.

    Only Code and Message are read: S3 also echoes StringToSign/CanonicalRequest/SignatureProvided, which
    must not reach a log. ``AccessDenied`` + "expired" -> ``expired=True``; ``SignatureDoesNotMatch`` and
    other 4xx that a new URL cannot fix -> ``retryable=False``; 5xx, ``SlowDown``, other 403s -> retryable.
    """
    text = body.decode("utf-8", "replace")
    found = {m.group(1): m.group(2).strip() for m in _XML_FIELD.finditer(text)}
    code = found.get("Code") or None
    message = _clean(found.get("Message"), redactor)
    expired = code == "AccessDenied" and "expired" in (message or "").lower()
    if code == "SignatureDoesNotMatch":
        retryable = False
    elif status >= 500 or code in ("SlowDown", "RequestTimeout", "InternalError"):
        retryable = True
    else:
        # 403s other than a signature mismatch (expired, already used) are cured by a fresh URL; other
        # 4xx (411 length, 413 too large, 400 bad request, 501 chunked) would fail the same way again.
        retryable = status == 403
    if code is None and 300 <= status < 400:
        code, retryable = "Redirect", False  # a storage redirect (another region, host) will not change
    detail = f"PUT {redact_url(url)}: HTTP {status}" + (f" {code}" if code else "")
    if message:
        detail += f": {message}"
    return UploadError(detail, status=status, code=code, expired=expired, retryable=retryable)
