"""Settings built once at the edge (CLI or Python API) and passed down; credentials and validation.

Precedence: explicit arguments (CLI flags), then environment (``NCLOUD_ACCESS_KEY``/``NCLOUD_SECRET_KEY``,
``THUMBNAIL_INGEST_*``), then ``~/.ncloud/configure``. The secret never appears in a repr or a message.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.attach.settings import AttachSettings
from pipeline.client.settings import DEFAULT_ENDPOINT, DEFAULT_PRESIGN_PATH, DEFAULT_STATUS_PATH, ApiSettings
from pipeline.errors import ConfigError
from pipeline.fetch.refs import root_location, root_problem
from pipeline.fetch.settings import FetchSettings
from pipeline.models import Credentials, ImagePolicy

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_PRESIGN_PATH",
    "DEFAULT_STATUS_PATH",
    "ApiSettings",
    "ColumnMap",
    "Credentials",
    "Settings",
    "load_credentials",
    "ray_installed",
]

NCLOUD_CONFIGURE = Path("~/.ncloud/configure")


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


def ray_installed() -> bool:
    """Whether ``import ray`` would find Ray, without importing it (``--help`` and start-up stay light)."""
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["ray"] is None (hidden on purpose)
        return False


def _without_secrets(url: str) -> str:
    """``url`` without a query string, a fragment or anything up to an ``@`` (``user:password@``, even one
    holding a ``/``): safe to print."""
    return re.sub(r"^([^:/]*://).*@", r"\1", re.split(r"[?#]", url, maxsplit=1)[0])


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Which manifest columns hold the path, the row id, the file-name override and the person columns."""

    path: str = "path"
    id: str | None = "id"
    """Used when present in the manifest; a missing optional column is not an error."""
    file_name: str | None = "file_name"
    person: str | None = "person"
    """The person's name; rows with the same value are one person (``--attach``)."""
    person_id: str | None = "person_id"
    """An existing person's id: the row is added to that person."""
    primary: str | None = "primary"
    """true/1/yes marks the person's primary thumbnail."""


@dataclass(frozen=True, slots=True)
class Settings:
    """One run's settings. Built at the edge; every stage reads what it needs from here."""

    api: ApiSettings
    out: Path | None = None
    """Results manifest (.parquet or .csv). Default: ``<manifest stem>.results.parquet`` beside it."""
    journal: Path | None = None
    """SQLite journal. Default: one per endpoint and workspace in the user's state folder
    (``journal.location``), or an older release's ``<manifest stem>.journal.sqlite`` found beside the manifest."""
    journal_wait: float = field(default=10.0, metadata={
        "help": "how long to wait for another run holding the journal before stopping with exit 75; 0 = don't wait",
        "unit": "s"})
    root: Path | str | None = field(default=None, metadata={"convert": root_location})
    """Relative paths resolve against this (default: the manifest's folder); paths may not escape it. A local
    folder is a ``Path``; an ``s3://``, ``gs://`` or ``http(s)://`` prefix stays text (``root_location``)."""
    columns: ColumnMap = field(default_factory=ColumnMap)
    policy: ImagePolicy = field(default_factory=ImagePolicy)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    """Bounds of the fetch stage for remote sources (``s3://``, ``gs://``, ``http(s)://``)."""
    confirm: bool = True
    workers: int = 0
    """Image-preparation workers; 0 = one per CPU."""
    use_processes: bool = False
    engine: str = "local"
    """Where fetch and prepare run: ``local`` (the thread or process pool) or ``ray`` (a Ray cluster's CPUs)."""
    ray_address: str | None = None
    """The Ray cluster to join (``auto``, ``ray://host:10001``, ``host:6379``); ``None``: ``RAY_ADDRESS``, else a
    local Ray started for the run and stopped after it."""
    shared_fs: bool = False
    """Every node of a multi-node Ray cluster sees the manifest's local paths (a shared file system)."""
    dry_run: bool = False
    retry_failed: bool = True
    dedupe: bool = False
    log_format: str = "auto"
    progress: bool = True
    batch_size: int = 4096
    limit: int | None = None
    """Take at most this many rows that need work (new, changed, to re-check or to retry); ``None`` = all."""
    attach: bool = False
    """Attach every uploaded key to its row's person (``person``/``person_id`` columns)."""
    persons: AttachSettings = field(default_factory=AttachSettings)
    """The attach stage's rate, per-person limit and deadline."""
    id_prefix: str = field(default="", metadata={
        "help": "put TEXT before every row key: two archives that reuse the same ids keep apart in one journal",
        "metavar": "TEXT"})
    """Put before every row key (the ``id``, else the path): archives whose ids overlap stay apart."""
    report: Path | None = field(default=None, metadata={
        "help": "write the run's HTML report here at the end (see `thumbnail-ingest report`)", "metavar": "HTML"})
    """Where to write the HTML run report at the end of the run (``pipeline.report``); ``None`` = none."""
    stats: float = field(default=60.0, metadata={
        "help": "when no progress bar is drawn (--no-progress, JSON logs, not a terminal), log a progress event "
                "every SECONDS (done, total, rows/s, ETA, retries, counts per status); 0 = off", "unit": "s"})
    """Seconds between ``progress`` events (logged only when no bar is drawn) and ``metrics_file`` writes; 0 = none
    (the metrics file is then written at the end only)."""
    metrics_file: Path | None = field(default=None, metadata={
        "help": "write the run's counters in Prometheus text format here (node_exporter textfile collector: end "
                "the name in .prom) at each --stats tick and at the end, atomically", "metavar": "PATH"})
    """Where the run's counters go in Prometheus' text exposition format (``pipeline.metrics``); ``None`` = none."""

    def __post_init__(self) -> None:
        if self.root is not None:
            # Normalised here too, so Settings(root="photos") built directly means the same as from the CLI.
            object.__setattr__(self, "root", root := root_location(self.root))
            problem = root_problem(root) if isinstance(root, str) else None
            if isinstance(root, str) and problem is not None:
                raise ConfigError(f"--root {_without_secrets(root)} cannot be used: {problem}.")
        if not self.journal_wait >= 0:
            raise ConfigError("--journal-wait must be 0 (don't wait) or more seconds.")
        if not self.stats >= 0:
            raise ConfigError("--stats must be 0 (off) or more seconds.")
        if self.workers < 0:
            raise ConfigError("--workers must be 0 (one per CPU) or more.")
        if self.engine not in ("local", "ray"):
            raise ConfigError(f"--engine must be local or ray; got {self.engine!r}.")
        if self.engine != "ray" and (self.ray_address is not None or self.shared_fs):
            raise ConfigError("--ray-address and --shared-fs are for --engine ray; add --engine ray.")
        if self.engine == "ray" and not ray_installed():
            raise ConfigError("--engine ray needs Ray: install it with pip install 'thumbnail-ingest[ray]' "
                              "(or pip install 'ray[data]').")
        if self.log_format not in ("auto", "console", "json"):
            raise ConfigError("--log-format must be console or json.")
        if self.limit is not None and self.limit < 1:
            raise ConfigError("--limit must be at least 1 (leave it out to take every row).")
        if self.report is not None and self.report.suffix.lower() not in (".html", ".htm"):
            raise ConfigError(f"--report must end in .html; got {self.report.name!r}.")
        if self.attach and self.dedupe:
            raise ConfigError("--dedupe cannot be used with --attach: rows sharing one key could not each be "
                              "attached (a key is attached to one person, once).")
        if self.out is not None and self.out.suffix.lower() not in (".parquet", ".csv"):
            raise ConfigError(f"--out must end in .parquet or .csv; got {self.out.name!r}.")
        if self.policy.max_side is not None and self.policy.max_side < self.policy.min_side:
            raise ConfigError(f"--max-side must be at least {self.policy.min_side} px (the API's minimum).")
