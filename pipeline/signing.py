"""NCP API gateway signature v2 (pure functions, no I/O).

``signature = base64(HMAC-SHA256(secret, METHOD + " " + PATH_AND_QUERY + "\\n" + TIMESTAMP + "\\n" + ACCESS_KEY))``.
The body is not signed. The path and query must be byte-for-byte what goes on the wire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

__all__ = [
    "ACCESS_KEY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "now_ms",
    "sign",
    "signed_headers",
]

TIMESTAMP_HEADER = "x-ncp-apigw-timestamp"
ACCESS_KEY_HEADER = "x-ncp-iam-access-key"
SIGNATURE_HEADER = "x-ncp-apigw-signature-v2"


def now_ms() -> str:
    """The current epoch time in milliseconds as the decimal string the gateway expects."""
    return str(time.time_ns() // 1_000_000)


def sign(method: str, path_and_query: str, timestamp: str, access_key: str, secret_key: str) -> str:
    """Return the base64 signature v2 of one request.

    ``path_and_query`` is the exact request target (no scheme or host); ``timestamp`` is the same
    string sent in ``x-ncp-apigw-timestamp``.
    """
    message = f"{method.upper()} {path_and_query}\n{timestamp}\n{access_key}"
    digest = hmac.new(secret_key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_headers(
    method: str,
    path_and_query: str,
    access_key: str,
    secret_key: str,
    *,
    timestamp: str | None = None,
) -> dict[str, str]:
    """The four headers of a signed JSON call, with a fresh timestamp unless one is given."""
    ts = timestamp if timestamp is not None else now_ms()
    return {
        TIMESTAMP_HEADER: ts,
        ACCESS_KEY_HEADER: access_key,
        SIGNATURE_HEADER: sign(method, path_and_query, ts, access_key, secret_key),
        "Content-Type": "application/json",
    }
