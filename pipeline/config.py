"""Settings built once at the edge (CLI or Python API) and passed down; credentials and validation.

Precedence: explicit arguments (CLI flags), then environment (``NCLOUD_ACCESS_KEY``/``NCLOUD_SECRET_KEY``,
``THUMBNAIL_INGEST_*``), then ``~/.ncloud/configure``. The secret never appears in a repr or a message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.models import ImagePolicy

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_PRESIGN_PATH",
    "DEFAULT_STATUS_PATH",
    "ApiSettings",
    "ColumnMap",
    "Credentials",
    "Settings",
    "load_credentials",
]

DEFAULT_ENDPOINT = "https://mi.apigw.ntruss.com"
DEFAULT_PRESIGN_PATH = "/api/v1/workspaces/{workspace}/person-thumbnail/uploads/presigned-url"
DEFAULT_STATUS_PATH = "/api/v1/workspaces/{workspace}/person-thumbnail/uploads/complete"
NCLOUD_CONFIGURE = Path("~/.ncloud/configure")


@dataclass(frozen=True, slots=True)
class Credentials:
    """An NCP access key pair. ``secret_key`` is excluded from ``repr``."""

    access_key: str
    secret_key: str = field(repr=False)


def _read_configure(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return values
    for line in text.splitlines():
        m = re.match(r"\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$", line)
        if m:
            values.setdefault(m.group(1), m.group(2))
    return values


def load_credentials(
    env: Mapping[str, str] | None = None, configure_path: Path | None = None
) -> Credentials:
    """Find the key pair: environment first, then the NCP CLI's ``~/.ncloud/configure``.

    Raises ``ConfigError`` (one sentence, no secret) when neither has a complete pair.
    """
    env = os.environ if env is None else env
    access, secret = env.get("NCLOUD_ACCESS_KEY", ""), env.get("NCLOUD_SECRET_KEY", "")
    if access and secret:
        return Credentials(access, secret)
    if access or secret:
        missing = "NCLOUD_SECRET_KEY" if access else "NCLOUD_ACCESS_KEY"
        raise ConfigError(f"NCLOUD_ACCESS_KEY and NCLOUD_SECRET_KEY must be set together; {missing} is empty.")
    path = (configure_path or NCLOUD_CONFIGURE).expanduser()
    values = _read_configure(path)
    access = values.get("ncloud_access_key_id", "")
    secret = values.get("ncloud_secret_access_key", "")
    if access and secret:
        return Credentials(access, secret)
    raise ConfigError(
        "No API credentials found: set NCLOUD_ACCESS_KEY and NCLOUD_SECRET_KEY, "
        f"or write ncloud_access_key_id / ncloud_secret_access_key in {path}."
    )


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


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Which manifest columns hold the path, the row id and the file-name override."""

    path: str = "path"
    id: str | None = "id"
    """Used when present in the manifest; a missing optional column is not an error."""
    file_name: str | None = "file_name"


@dataclass(frozen=True, slots=True)
class Settings:
    """One run's settings. Built at the edge; every stage reads what it needs from here."""

    api: ApiSettings
    out: Path | None = None
    """Results manifest (.parquet or .csv). Default: ``<manifest stem>.results.parquet`` beside it."""
    journal: Path | None = None
    """SQLite journal. Default: ``<manifest stem>.journal.sqlite`` beside the results."""
    root: Path | None = None
    """Relative paths resolve against this (default: the manifest's folder); paths may not escape it."""
    columns: ColumnMap = field(default_factory=ColumnMap)
    policy: ImagePolicy = field(default_factory=ImagePolicy)
    confirm: bool = True
    workers: int = 0
    """Image-preparation workers; 0 = one per CPU."""
    use_processes: bool = False
    dry_run: bool = False
    retry_failed: bool = True
    dedupe: bool = False
    log_format: str = "auto"
    progress: bool = True
    batch_size: int = 4096

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ConfigError("--workers must be 0 (one per CPU) or more.")
        if self.log_format not in ("auto", "console", "json"):
            raise ConfigError("--log-format must be console or json.")
        if self.out is not None and self.out.suffix.lower() not in (".parquet", ".csv"):
            raise ConfigError(f"--out must end in .parquet or .csv; got {self.out.name!r}.")
        if self.policy.max_side is not None and self.policy.max_side < self.policy.min_side:
            raise ConfigError(f"--max-side must be at least {self.policy.min_side} px (the API's minimum).")
