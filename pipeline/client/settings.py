"""The API client's settings: endpoint, URI templates, rates, concurrency, timeouts and retry rules."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import ConfigError
from pipeline.models import Credentials

__all__ = ["DEFAULT_ENDPOINT", "DEFAULT_PRESIGN_PATH", "DEFAULT_STATUS_PATH", "ApiSettings"]

DEFAULT_ENDPOINT = "https://mi.apigw.ntruss.com"
DEFAULT_PRESIGN_PATH = "/api/v1/workspaces/{workspace}/person-thumbnail/uploads/presigned-url"
DEFAULT_STATUS_PATH = "/api/v1/workspaces/{workspace}/person-thumbnail/uploads/complete"


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Everything the API client needs."""

    workspace: str
    credentials: Credentials
    endpoint: str = DEFAULT_ENDPOINT
    presign_path: str = DEFAULT_PRESIGN_PATH
    status_path: str = DEFAULT_STATUS_PATH
    rate: float = 50.0
    """Presign calls per second, never exceeded in any sliding 1 s window. 0 = unlimited."""
    confirm_rate: float = 1000.0
    """Status calls per minute, never exceeded in any sliding 60 s window. 0 = unlimited."""
    concurrency: int = 16
    """Rows in flight between presign and confirm (also the connection-pool size)."""
    connect_timeout: float = 10.0
    request_timeout: float = 60.0
    """Total seconds for one call (a 5 MB PUT included)."""
    max_call_attempts: int = 5
    """Tries of one call on 5xx/timeouts/dropped connections/429 before the row fails."""
    max_row_attempts: int = 8
    """Presign+PUT rounds for one row (a failed or expired PUT starts again from a new presign)."""
    backoff_base: float = 0.2
    backoff_max: float = 10.0
    adaptive: bool = True
    """Lower the presign rate on 429 (AIMD) so a server whose real limit is lower meets few 429s."""

    def __post_init__(self) -> None:
        if not self.workspace:
            raise ConfigError("A workspace name is required (--workspace).")
        if not re.match(r"^https?://[^/\s]+", self.endpoint):
            raise ConfigError(f"--endpoint must be an http(s) URL such as {DEFAULT_ENDPOINT}; got {self.endpoint!r}.")
        if self.rate < 0 or self.confirm_rate < 0:
            raise ConfigError("--rate and --confirm-rate must be zero (unlimited) or positive.")
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1.")
        for name in ("presign_path", "status_path"):
            value = getattr(self, name)
            if not value.startswith("/") or "{workspace}" not in value:
                raise ConfigError(f"The {name} must start with '/' and contain '{{workspace}}'; got {value!r}.")
