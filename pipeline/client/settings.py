"""The API client's settings: endpoint, URI templates, rates, concurrency, timeouts and retry rules.

Every knob a user may set is a field with ``metadata={"help": ..., "unit": ...}``: the CLI generates
``--field-name`` options from the fields that carry ``help``, and reads their defaults from here (defined
once). ``__post_init__`` refuses bad values with a sentence that names the flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from urllib.parse import urlsplit

from pipeline.errors import ConfigError
from pipeline.models import Credentials

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_PRESIGN_PATH",
    "DEFAULT_STATUS_PATH",
    "ApiSettings",
    "endpoint_problem",
    "flag_name",
]

DEFAULT_ENDPOINT = "https://mi.apigw.ntruss.com"
DEFAULT_PRESIGN_PATH = "/api/v1/workspaces/{workspace}/person-thumbnail/uploads/presigned-url"
DEFAULT_STATUS_PATH = "/api/v1/workspaces/{workspace}/person-thumbnail/uploads/complete"


def _knob(default: float, help: str, unit: str = "") -> float:
    return field(default=default, metadata={"help": help, "unit": unit})


def flag_name(name: str) -> str:
    """The command-line flag of a settings field: ``read_timeout`` -> ``--read-timeout``."""
    return "--" + name.replace("_", "-")


def endpoint_problem(text: str) -> str | None:
    """Why ``text`` cannot be the API's base address, as one sentence naming ``--endpoint``; ``None`` when it
    is ``http(s)://host[:port]`` (a trailing ``/`` allowed). The sentence never repeats user info, a query or
    a fragment: they may hold a credential."""
    example = f"such as {DEFAULT_ENDPOINT}"
    if not isinstance(text, str) or not text.lower().startswith(("http://", "https://")):
        shown = repr(text) if isinstance(text, str) and "@" not in text and "?" not in text else "another value"
        return f"--endpoint must be an http(s) URL {example}; got {shown}."
    try:
        parts = urlsplit(text)
        _ = parts.port  # parsed here: a port above 65535 or not a number raises ValueError
        host = parts.hostname
    except ValueError:  # an unclosed IPv6 bracket, a bad port
        return f"--endpoint is not a valid http(s) URL (scheme://host[:port], {example})."
    if "@" in parts.netloc:
        return ("--endpoint cannot hold user info (user:password@); the API keys come from NCLOUD_ACCESS_KEY and "
                "NCLOUD_SECRET_KEY.")
    if not host or any(c.isspace() for c in text):
        return f"--endpoint needs a host: scheme://host[:port], {example}."
    if parts.path not in ("", "/") or parts.query or parts.fragment or text.endswith(("?", "#")):
        base = f"{parts.scheme.lower()}://{parts.netloc}"
        if parts.path not in ("", "/"):
            return (f"--endpoint takes scheme://host[:port] only (here {base}); the API paths are added by the "
                    "tool (--presign-path, --status-path).")
        return f"--endpoint takes scheme://host[:port] only (here {base}); it cannot hold a query or a fragment."
    return None


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Everything the API client needs. Times are seconds; rates are calls per the period named."""

    workspace: str
    credentials: Credentials
    endpoint: str = DEFAULT_ENDPOINT
    presign_path: str = field(default=DEFAULT_PRESIGN_PATH, metadata={
        "help": "URI template of the presign call ({workspace} is replaced)", "unit": ""})
    status_path: str = field(default=DEFAULT_STATUS_PATH, metadata={
        "help": "URI template of the upload-status call ({workspace} is replaced)", "unit": ""})
    rate: float = _knob(50.0, "presign calls per second, never exceeded in any 1 s window; 0 = unlimited", "calls/s")
    confirm_rate: float = _knob(
        1000.0, "status calls per minute, never exceeded in any 60 s window; 0 = unlimited", "calls/min")
    concurrency: int = field(default=16, metadata={
        "help": "rows in flight between presign and confirm (also the connection-pool size)", "unit": "rows"})
    connect_timeout: float = _knob(5.0, "seconds to open a connection (TCP and TLS) for any call", "s")
    read_timeout: float = _knob(8.0, "seconds to wait for the answer to an API call (small JSON)", "s")
    put_timeout_floor: float = _knob(30.0, "seconds every upload (PUT) may take, whatever its size", "s")
    put_min_rate: float = _knob(
        50.0, "slowest upload speed still waited for: a PUT may take floor + size / this rate", "kB/s")
    max_retry_after: float = _knob(60.0, "longest server-requested wait (Retry-After) that is obeyed", "s")
    retry_window: float = _knob(
        120.0, "how long one call is retried on 429, 5xx, timeouts and dropped connections before its row fails",
        "s")
    outage_budget: float = _knob(
        300.0, "how long the service may answer only errors, 429 or nothing before the run stops (exit 3)", "s")
    max_row_attempts: int = field(default=8, metadata={
        "help": "presign+PUT rounds for one row (a failed or expired PUT starts again from a new presign)",
        "unit": "rounds"})
    confirm_wait: float = _knob(
        60.0, "how long to keep asking while an upload's status is not final (IN_PROGRESS)", "s")
    stop_grace: float = _knob(
        20.0, "after a first Ctrl-C/SIGTERM, how long uploads and attaches already holding a key may take to finish; "
        "then they are left for the next run (every other wait ends at once)", "s")
    backoff_base: float = 0.2
    """First retry's upper bound (full jitter doubles it per attempt up to ``backoff_max``)."""
    backoff_max: float = _knob(10.0, "longest pause between two tries of one call", "s")
    adaptive: bool = True
    """Lower the presign rate on 429 (AIMD) so a server whose real limit is lower meets few 429s."""

    def __post_init__(self) -> None:
        if not self.workspace:
            raise ConfigError("A workspace name is required (--workspace).")
        problem = endpoint_problem(self.endpoint)
        if problem is not None:
            raise ConfigError(problem)
        for name in ("presign_path", "status_path"):
            value = getattr(self, name)
            if not value.startswith("/") or "{workspace}" not in value:
                raise ConfigError(f"{flag_name(name)} must start with '/' and contain '{{workspace}}'; got {value!r}.")
        for name in ("rate", "confirm_rate"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{flag_name(name)} must be zero (unlimited) or positive; got {value}.")
        for name in ("concurrency", "max_row_attempts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{flag_name(name)} must be at least 1; got {getattr(self, name)}.")
        positive = ("connect_timeout", "read_timeout", "put_timeout_floor", "put_min_rate", "retry_window",
                    "outage_budget", "backoff_base", "backoff_max")
        for name in positive:
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{flag_name(name)} must be a positive number of {_unit(name)}; got {value}.")
        for name in ("max_retry_after", "confirm_wait", "stop_grace"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{flag_name(name)} must be zero or a positive number of seconds; got {value}.")

    def put_timeout(self, size: int) -> float:
        """Seconds one PUT of ``size`` bytes may take: the floor plus the time at the slowest accepted rate."""
        return self.put_timeout_floor + size / (self.put_min_rate * 1000.0)


def _unit(name: str) -> str:
    unit = next(str(f.metadata.get("unit", "")) for f in fields(ApiSettings) if f.name == name)
    return {"s": "seconds", "": "seconds"}.get(unit, unit)
