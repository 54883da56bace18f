"""The exception tree: run-level problems only.

Per-row problems (a bad image, a PUT that kept failing) are data: a ``RowResult`` with a ``reason``.
Exceptions are for what stops a run or must be handled by the caller::

    IngestError                      base of everything this package raises on purpose
    ├── ConfigError                  bad flag, setting or credentials            -> exit 2
    │   ├── ManifestError            unreadable manifest, missing column, ...    -> exit 2
    │   ├── JournalMismatchError     journal belongs to another manifest         -> exit 2
    │   └── JournalBusyError         another run holds the journal (cron overlap) -> exit 75
    ├── JournalStateError            a write would re-upload an uploaded row: a bug, never data
    ├── LocalWriteError              the journal or the results could not be written (disk full) -> exit 1
    ├── FatalApiError                the API says no for every row               -> exit 3
    │   ├── AuthenticationError      401 code 200 (key, signature, clock)
    │   ├── PermissionDeniedError    401/403 code 210/230
    │   ├── NotFoundError            404 code 300 (e.g. unknown workspace)
    │   ├── QuotaExhaustedError      429 code 400
    │   ├── EndpointUnreachableError the endpoint cannot be reached: refused, DNS, TLS, redirect, silence
    │   └── ServiceUnavailableError  only 5xx/429/no answer for longer than the run's outage budget
    └── ApiError                     one call failed; the client maps it to a row outcome
        ├── RateLimitedError         429 code 410/420 (carries retry_after)
        ├── TransientError           5xx, timeout, dropped connection
        ├── RequestRejectedError     4xx that will fail the same way again (per row)
        └── UploadError              the storage PUT failed (carries the S3 code)

Messages never contain the secret key, a signature or a presigned URL's query string.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "AuthenticationError",
    "ConfigError",
    "EndpointUnreachableError",
    "FatalApiError",
    "IngestError",
    "JournalBusyError",
    "JournalMismatchError",
    "JournalStateError",
    "LocalWriteError",
    "ManifestError",
    "NotFoundError",
    "PermissionDeniedError",
    "QuotaExhaustedError",
    "RateLimitedError",
    "RequestRejectedError",
    "ServiceUnavailableError",
    "TransientError",
    "UploadError",
]


class IngestError(Exception):
    """Base class of every exception this package raises on purpose."""


class ConfigError(IngestError):
    """A usage or configuration problem; the message is one sentence telling the user what to do."""


class ManifestError(ConfigError):
    """The manifest cannot be used (unreadable, missing column, duplicate ids, ...)."""


class JournalMismatchError(ConfigError):
    """The journal was created for a different manifest or workspace."""


class JournalBusyError(ConfigError):
    """Another run holds the journal's lock (and kept it for the whole ``--journal-wait``): nothing was done;
    the message names the holder (pid, host, since when, its command). The CLI exits 75 (``ExitCode.BUSY``)."""


class JournalStateError(IngestError):
    """A journal write that would break its promises (re-uploading an uploaded row): a bug, not data."""


class LocalWriteError(IngestError):
    """Writing the journal or the results failed mid-run (disk full, read-only mount): the run stops cleanly,
    the state committed so far is kept, and the message is one sentence naming the file."""


class FatalApiError(IngestError):
    """The API refused in a way that would fail every row: the run stops once, not per row."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AuthenticationError(FatalApiError):
    """401 code 200: wrong access key, wrong signature or a clock more than 5 minutes off."""


class PermissionDeniedError(FatalApiError):
    """401/403 code 210/230: the key may not use this API or workspace."""


class NotFoundError(FatalApiError):
    """404 code 300: typically an unknown workspace or a wrong endpoint path."""


class QuotaExhaustedError(FatalApiError):
    """429 code 400: the account's quota is used up; hammering will not help."""


class EndpointUnreachableError(FatalApiError):
    """The API endpoint (or the storage host) cannot be talked to: connection refused, DNS failure, TLS
    failure, a redirect, or no answer at all before any call has succeeded. The message names the host."""


class ServiceUnavailableError(FatalApiError):
    """The service answered nothing but 5xx, 429 or silence for longer than the run's outage budget: the
    run stops in bounded time instead of failing row after row; a re-run resumes."""


class ApiError(IngestError):
    """One API or storage call failed. ``reason`` is the stable snake_case code recorded on the row."""

    reason = "api_error"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RateLimitedError(ApiError):
    """429 code 410/420: slow down and retry after ``retry_after`` seconds."""

    reason = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class TransientError(ApiError):
    """A 5xx answer, a timeout or a dropped connection: worth a bounded number of retries."""

    reason = "transient_error"


class RequestRejectedError(ApiError):
    """A 4xx answer that would fail the same way again (bad request, entity too large)."""

    reason = "request_rejected"


class UploadError(ApiError):
    """The storage PUT failed; ``code`` is the S3 error code (``AccessDenied``, ``SlowDown``, ...)."""

    reason = "upload_failed"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        expired: bool = False,
        retryable: bool = True,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.expired = expired
        self.retryable = retryable
