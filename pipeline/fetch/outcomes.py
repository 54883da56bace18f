"""What the fetch stage hands on: ``Fetched`` bytes with their ``SourceStamp``, or ``FetchRejected``.

Details never hold a secret, a signature or a URL's query string: they name a source by
``SourceRef.display`` and an answer by its status and (for object stores) its error code only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.fetch.budget import Lease

__all__ = ["UNSTAMPED", "FetchRejected", "FetchStats", "Fetched", "SourceStamp"]

UNSTAMPED = "unstamped"
"""The stamp a HEAD answers for a web source with neither ETag nor Last-Modified. A fetch stamps such a source
``None``, so this never equals a journaled stamp: a finished row is fetched again and its sha256 decides
whether it changed (a source nothing identifies cheaply is compared by content)."""


@dataclass(frozen=True, slots=True)
class SourceStamp:
    """A cheap identity of one version of a source, read without its bytes.

    ``value`` is ``size:mtime_ns`` for a local file (as ``pipeline.runner.plan`` journals it),
    ``etag:<ETag>`` for an object or URL with an ETag, ``lm:<Last-Modified>:<size>`` without one, and
    ``None`` when nothing cheap identifies the version (then a re-run must fetch to compare).
    ``size`` is the byte count when known.
    """

    value: str | None
    size: int | None


@dataclass(frozen=True, slots=True)
class Fetched:
    """A source's complete bytes (``size == len(data)``) and the stamp of the version they are; ``lease``
    (``Fetcher.fetch(ref, hold=True)``) holds their bytes in the fetch budget until the caller releases it."""

    data: bytes = field(repr=False)
    size: int
    stamp: SourceStamp
    lease: Lease | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class FetchRejected:
    """Why a source was not fetched: ``reason`` is one of ``not_found``, ``unreadable``, ``access_denied``,
    ``fetch_failed``, ``source_too_large``, ``unsupported_source``; ``detail`` one secret-free sentence.
    ``refusal`` and ``proves_access`` say what the last answer showed about the store (``Failure``'s): a read
    done in another process (a Ray worker) is judged by the driver's ``Fetcher.judge`` with them."""

    reason: str
    detail: str
    refusal: str | None = field(default=None, compare=False)
    proves_access: bool = field(default=False, compare=False)


@dataclass(slots=True)
class FetchStats:
    """Counters of one ``Fetcher`` (for logs, the summary and benchmarks): requests sent (HEAD and GET,
    retries included), retries, new HTTP(S) connections opened, sources fetched and their bytes, and
    rejections by reason."""

    requests: int = 0
    connections: int = 0
    retries: int = 0
    fetched: int = 0
    bytes: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
