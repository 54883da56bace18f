"""Redaction of secrets from text, nested values and structlog events.

What is never allowed out (logs, results, the journal, exception messages): the secret key, request
signatures (``x-ncp-apigw-signature-v2``, ``X-Amz-Signature``), presigned-URL credentials
(``X-Amz-Credential``, ``X-Amz-Security-Token``) and URL query strings as a whole (a presigned URL's query
is a bearer credential). Servers echo these back in error bodies in every shape -- JSON
(``"x-ncp-apigw-signature-v2": "..."``), a header dump (``x-ncp-apigw-signature-v2: ...``), a query
(``X-Amz-Signature=...``), XML (``<SignatureProvided>...</SignatureProvided>``) -- so each is matched by
name in all of them, and a bare base64 HMAC-SHA256 (44 characters ending in ``=``) is cut wherever it stands.

``redact_text`` needs no secrets; a ``Redactor`` also replaces the secrets it holds and is a structlog
processor (``structlog.configure(processors=[..., Redactor([secret]), renderer])``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from typing import Any

__all__ = ["REDACTED", "Redactor", "redact_text"]

REDACTED = "<redacted>"

_QUERY = re.compile(r"(?P<base>\bhttps?://[^\s?#'\"<>]+)\?(?!<redacted>)[^\s'\"<>]*")
_NAMES = r"x-ncp-apigw-signature-v2|x-ncp-apigw-signature|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token"
# name, then a separator in any echo shape (=, :, ": ", '=' in quotes), then the value up to a delimiter.
_NAMED = re.compile(
    rf"(?P<name>(?:{_NAMES}))(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\s&\"'<>,;}}\]]+)", re.IGNORECASE
)
_XML = re.compile(r"(<(SignatureProvided|StringToSign|CanonicalRequest)>)(.*?)(</\2>)", re.DOTALL | re.IGNORECASE)
_HMAC_B64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=")
"""A bare base64 HMAC-SHA256: what ``x-ncp-apigw-signature-v2`` carries."""


def redact_text(text: str) -> str:
    """``text`` with URL query strings, signature/credential values and bare HMAC signatures replaced.

    Idempotent, and safe on any string: text without such values comes back unchanged.
    """
    # Cheap substring tests first: a log line of a million-row run must not pay four regex scans per field.
    if "?" in text:
        text = _QUERY.sub(rf"\g<base>?{REDACTED}", text)
    low = text.lower()
    if "signature" in low or "x-amz" in low:
        text = _NAMED.sub(rf"\g<name>\g<sep>{REDACTED}", text)
    if "<" in text and ("signature" in low or "stringtosign" in low or "canonicalrequest" in low):
        text = _XML.sub(rf"\1{REDACTED}\4", text)
    return _HMAC_B64.sub(REDACTED, text) if "=" in text else text


class Redactor:
    """Redacts ``redact_text``'s patterns plus the secrets it holds, in text, containers and exceptions.

    An instance is a structlog processor: every field of every event is scrubbed before rendering.
    Secrets shorter than 4 characters are ignored (they would redact ordinary text).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: tuple[str, ...] = ()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Hold one more secret (a key pair's secret, a session token)."""
        if secret and len(secret) >= 4 and secret not in self._secrets:
            # Longest first, so a secret that contains another is replaced whole.
            self._secrets = tuple(sorted((*self._secrets, secret), key=len, reverse=True))

    def text(self, s: str) -> str:
        """``s`` with every held secret and every ``redact_text`` pattern replaced by ``<redacted>``."""
        for secret in self._secrets:
            if secret in s:
                s = s.replace(secret, REDACTED)
        return redact_text(s)

    def value(self, v: Any) -> Any:
        """A copy of ``v`` with its strings redacted: dict values, list/tuple/set items (nested), and an
        exception as the redacted text ``"Type: message"``. Other values are returned as they are."""
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items()}
        if isinstance(v, (list, tuple, set, frozenset)):
            return type(v)(self.value(x) for x in v)
        if isinstance(v, BaseException):
            return self.text(f"{type(v).__name__}: {v}")
        return v

    def __call__(
        self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """structlog processor: scrub every field of the event in place and return it."""
        for key in list(event_dict):
            event_dict[key] = self.value(event_dict[key])
        return event_dict
