"""``FetchSettings``: the fetch stage's bounds, one frozen dataclass built at the edge.

Fields carrying ``help`` metadata become ``ingest`` flags (``pipeline.options`` generates them), so the
defaults here are the only place they are defined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pipeline.errors import ConfigError

__all__ = ["FetchSettings"]

_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """How sources are fetched: concurrency, memory, size, time and retry bounds, and the S3 endpoint; and the
    memory bound of prepared images (``prepared_max_bytes``), the other half of a run's byte budget.

    Raises ``ConfigError`` (one sentence naming the setting) for a value that cannot work.
    """

    fetch_concurrency: int = field(
        default=32, metadata={"help": "sources fetched at once (local files, object stores, HTTP)", "metavar": "N"}
    )
    fetch_max_bytes_in_flight: int = field(
        default=256 * _MB,
        metadata={"help": "cap on remote source bytes held at once, from their fetch until the image stage is "
                          "done with them, so memory stays flat", "metavar": "BYTES"},
    )
    prepared_max_bytes: int = field(
        default=256 * _MB,
        metadata={"help": "cap on prepared images held at once, from the image stage until their upload is done",
                  "metavar": "BYTES"},
    )
    source_max_bytes: int = field(
        default=50 * _MB,
        metadata={"help": "larger sources are rejected source_too_large without being read", "metavar": "BYTES"},
    )
    fetch_timeout: float = field(
        default=120.0, metadata={"help": "time allowed to fetch one source, retries included", "unit": "s"}
    )
    fetch_retries: int = field(
        default=4, metadata={"help": "retries of a source after 5xx, 429, a timeout or a dropped connection",
                             "metavar": "N"}
    )
    s3_endpoint: str | None = field(
        default=None,
        metadata={"help": "S3-compatible endpoint for s3:// sources (e.g. https://kr.object.ncloudstorage.com; "
                          "default: AWS_ENDPOINT_URL, else AWS)", "metavar": "URL"},
    )
    retry_backoff: float = 0.25
    """First backoff before a retry, in seconds; doubled each time (with jitter), at most ``max_backoff``."""
    max_backoff: float = 8.0
    """Longest single wait between two attempts, in seconds (a Retry-After above it is capped)."""
    fatal_after: int = 5
    """Consecutive access failures (401/403, unknown bucket) of one store, with no success, that stop the run."""

    def __post_init__(self) -> None:
        if self.fetch_concurrency < 1:
            raise ConfigError(f"fetch_concurrency must be at least 1; got {self.fetch_concurrency}.")
        if self.source_max_bytes < 1:
            raise ConfigError(f"source_max_bytes must be at least 1; got {self.source_max_bytes}.")
        if self.fetch_max_bytes_in_flight < 1:
            raise ConfigError(f"fetch_max_bytes_in_flight must be at least 1; got {self.fetch_max_bytes_in_flight}.")
        if self.prepared_max_bytes < 1:
            raise ConfigError(f"prepared_max_bytes must be at least 1; got {self.prepared_max_bytes}.")
        if not (math.isfinite(self.fetch_timeout) and self.fetch_timeout > 0):
            raise ConfigError(f"fetch_timeout must be a positive number of seconds; got {self.fetch_timeout}.")
        if self.fetch_retries < 0:
            raise ConfigError(f"fetch_retries must be 0 or more; got {self.fetch_retries}.")
        if self.retry_backoff < 0 or self.max_backoff < 0:
            raise ConfigError("retry_backoff and max_backoff must be 0 or more.")
        if self.fatal_after < 1:
            raise ConfigError(f"fatal_after must be at least 1; got {self.fatal_after}.")
        endpoint = self.s3_endpoint
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"s3_endpoint must be an http:// or https:// URL; got {endpoint!r}.")
