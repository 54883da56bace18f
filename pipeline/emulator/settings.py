"""The emulator's configuration: fixed at start (``EmulatorConfig``) and mutable at runtime (``Faults``)."""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import Credentials
from pipeline.errors import ConfigError

__all__ = [
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_SECRET_KEY",
    "DEFAULT_WORKSPACE",
    "STORAGE_MODES",
    "EmulatorConfig",
    "Faults",
    "window_for",
]

DEFAULT_ACCESS_KEY = "EMULATOR-ACCESS-KEY"
DEFAULT_SECRET_KEY = "emulator-secret-key"  # noqa: S105 - a public, emulator-only credential
DEFAULT_WORKSPACE = "demo"
STORAGE_MODES = ("memory", "disk", "hash")


@dataclass
class Faults:
    """Injected misbehaviour, read on every call, so it may be changed while the emulator runs.

    Rates are fractions in [0, 1] drawn from one ``random.Random(seed)``. They apply to the API routes and
    the storage PUT, never to ``/_emulator/state``. Assigning a new ``seed`` restarts the random sequence.
    ``clock`` (monotonic seconds) times storms; the ``Emulator`` sets it to its own clock.
    """

    error_rate: float = 0.0
    """Fraction of calls answered 500 or 503 (API: MI body code "500"; PUT: S3 InternalError/SlowDown)."""
    html_error_rate: float = 0.0
    """Fraction of API calls answered 502 with an HTML page, as a proxy in front of the gateway does."""
    drop_rate: float = 0.0
    """Fraction of calls whose connection is closed before the request is processed, without an answer."""
    stall_rate: float = 0.0
    """Fraction of calls (API and PUT) that are accepted and never answered (until the client gives up)."""
    latency: float = 0.0
    """Seconds added before every answer."""
    put_answer_delay: float = 0.0
    """Seconds the storage holds its answer to a PUT after the object is stored (a slow storage front): a
    client that times out first sees no answer although its object landed."""
    queue_rate: float = 0.0
    """Fraction of API calls held ``queue_delay`` seconds in front of the gateway before it counts their
    arrival (a queue on the path, a busy gateway): their arrival trails their send by that much."""
    queue_delay: float = 0.03
    """Seconds a call picked by ``queue_rate`` waits before its arrival is stamped."""
    early_expiry_rate: float = 0.0
    """Fraction of issued URLs that are already expired when used."""
    quota_exhausted: bool = False
    """Answer every API call 429 code "400" (quota exceeded)."""
    retry_after: str = "auto"
    """The Retry-After of every 429: ``auto`` (seconds until the window has room), ``""`` (no header), or
    any other text sent verbatim (``"3600"``, an HTTP date)."""
    in_progress: int = 0
    """Status calls per key answered ``IN_PROGRESS`` before the real verdict is given."""
    forbidden_names: str = ""
    """A regular expression: presign calls whose thumbnailFileName matches it are answered 403 with an HTML
    page and no MI code (a firewall rule), for that row only."""
    redirect_to: str = ""
    """When set, every API call (and the preflight GET) is answered 307 to this base URL plus the path."""
    seed: int | None = None
    storm_until: float = 0.0
    """``clock()`` time until which every API call is answered 429 code "410"; set by ``storm()``."""
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    _rng: random.Random | None = field(default=None, init=False, repr=False, compare=False)
    _rng_seed: int | None = field(default=None, init=False, repr=False, compare=False)

    def storm(self, seconds: float) -> None:
        """Answer every API call 429 code "410" (with Retry-After) for the next ``seconds`` seconds."""
        self.storm_until = self.clock() + max(0.0, seconds)

    def storm_remaining(self) -> float:
        """Seconds left in the current storm (0 when there is none)."""
        return max(0.0, self.storm_until - self.clock())

    def forbids(self, file_name: str) -> bool:
        """Whether ``forbidden_names`` matches ``file_name`` (anywhere in it)."""
        return bool(self.forbidden_names) and re.search(self.forbidden_names, file_name) is not None

    def roll(self, rate: float) -> bool:
        """Draw once: ``True`` with probability ``rate``. Draws nothing when ``rate`` <= 0.

        Not drawing for zero rates keeps a seeded sequence independent of which faults are off.
        """
        if rate <= 0.0:
            return False
        return self.rng().random() < rate

    def rng(self) -> random.Random:
        """The fault RNG, re-created whenever ``seed`` has changed since it was last used."""
        if self._rng is None or self._rng_seed != self.seed:
            self._rng = random.Random(self.seed)
            self._rng_seed = self.seed
        return self._rng

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (the storm as seconds remaining)."""
        return {
            "error_rate": self.error_rate,
            "html_error_rate": self.html_error_rate,
            "drop_rate": self.drop_rate,
            "stall_rate": self.stall_rate,
            "latency": self.latency,
            "put_answer_delay": self.put_answer_delay,
            "queue_rate": self.queue_rate,
            "queue_delay": self.queue_delay,
            "early_expiry_rate": self.early_expiry_rate,
            "quota_exhausted": self.quota_exhausted,
            "retry_after": self.retry_after,
            "in_progress": self.in_progress,
            "forbidden_names": self.forbidden_names,
            "redirect_to": self.redirect_to,
            "seed": self.seed,
            "storm_remaining": round(self.storm_remaining(), 3),
        }


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator is set up; fixed once it starts (``faults`` is the runtime-mutable part).

    ``rate`` is presign calls accepted per sliding 1 s window, ``confirm_rate`` status calls per sliding
    60 s window and ``persons_rate`` persons-API calls per sliding 1 s window, per access key; 0 means
    unlimited. ``max_bytes`` is the size above which the status call answers ``OVER_SIZE_LIMIT``
    (5,000,000: the strict reading of the docs' "5 MB"); ``put_max_bytes`` the size above which the PUT
    itself is refused with ``EntityTooLarge`` (5 MiB).
    """

    host: str = "127.0.0.1"
    port: int = 0
    rate: float = 50.0
    confirm_rate: float = 1000.0
    persons_rate: float = 10.0
    thumbnail_ttl: float = 24 * 3600.0
    """Seconds after its upload (on the wall clock) at which a key not attached to a person expires."""
    credentials: tuple[Credentials, ...] = (Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY),)
    workspaces: tuple[str, ...] = (DEFAULT_WORKSPACE,)
    url_ttl: float = 900.0
    storage: str = "memory"
    storage_dir: Path | None = None
    sign_content_type: bool = False
    faults: Faults = field(default_factory=Faults)
    max_bytes: int = 5_000_000
    put_max_bytes: int = 5 * 1024 * 1024
    min_side: int = 256
    clock_skew: float = 300.0
    """Largest accepted distance, in seconds, between ``x-ncp-apigw-timestamp`` and the server clock."""
    tls_cert: Path | None = None
    """PEM certificate (with ``tls_key``): the emulator also listens with TLS, on ``tls_port``."""
    tls_key: Path | None = None
    tls_port: int = 0
    urls_over_tls: bool = False
    """Issue presigned URLs that point at the TLS listener (a storage host with its own certificate)."""
    log_requests: bool = False
    """Log one line per request (``-v``)."""

    def __post_init__(self) -> None:
        if self.rate < 0 or self.confirm_rate < 0 or self.persons_rate < 0:
            raise ConfigError("--rate, --confirm-rate and --persons-rate must be zero (unlimited) or positive.")
        if self.thumbnail_ttl <= 0:
            raise ConfigError("The thumbnail lifetime must be positive.")
        if not self.credentials:
            raise ConfigError("The emulator needs at least one access key pair.")
        if not self.workspaces or not all(self.workspaces):
            raise ConfigError("The emulator needs at least one non-empty workspace name.")
        if self.url_ttl <= 0:
            raise ConfigError("The URL lifetime must be positive.")
        if self.storage not in STORAGE_MODES:
            raise ConfigError(f"--storage must be one of {', '.join(STORAGE_MODES)}; got {self.storage!r}.")
        if self.storage == "disk" and self.storage_dir is None:
            raise ConfigError("--storage disk needs --storage-dir.")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be between 0 and 65535; got {self.port}.")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("Give both --tls-cert and --tls-key, or neither.")
        if self.urls_over_tls and self.tls_cert is None:
            raise ConfigError("--urls-over-tls needs --tls-cert and --tls-key.")


def window_for(rate: float, period: float) -> tuple[int, float]:
    """Turn "``rate`` calls per ``period`` seconds" into (calls allowed, window length in seconds).

    ``rate`` >= 1 allows ``floor(rate)`` calls in any ``period`` window; a smaller rate allows one call per
    ``period / rate`` seconds, so that fractional caps such as 0.5/s still let calls through.
    ``rate`` 0 means unlimited and returns ``(0, period)``.
    """
    if rate <= 0:
        return 0, period
    if rate >= 1:
        return math.floor(rate), period
    return 1, period / rate
