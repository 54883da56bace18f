"""The help text of the ``ingest`` options whose settings field carries no ``help`` metadata of its own (fields
owned by modules that should not know about the CLI: ``Settings``, ``ColumnMap``, ``ImagePolicy``, part of
``ApiSettings``), the help group of every option (``GROUP_OF``, in the order of ``GROUPS``) and which options are
byte sizes (``SIZES``). ``options`` reads it; nothing else does."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.attach.settings import AttachSettings
from pipeline.client.settings import ApiSettings
from pipeline.config import ColumnMap, Settings
from pipeline.fetch.settings import FetchSettings
from pipeline.models import ImagePolicy

__all__ = ["GROUPS", "GROUP_OF", "HELP_TABLE", "LOGS", "SIZES", "Spec"]


@dataclass(frozen=True, slots=True)
class Spec:
    """Help (and flag/metavar/env/choices) for a field whose owner put no ``help`` metadata on it."""

    help: str
    flag: str | None = None
    metavar: str | None = None
    env: str | None = None
    choices: tuple[str, ...] = ()


HELP_TABLE: dict[tuple[type, str], Spec] = {
    (ApiSettings, "workspace"): Spec("Media Intelligence workspace name (required)", metavar="NAME",
                                      env="WORKSPACE"),
    (ApiSettings, "endpoint"): Spec("API base URL", metavar="URL", env="ENDPOINT"),
    (Settings, "out"): Spec("results manifest, .parquet or .csv (default: <manifest>.results.parquet)",
                             metavar="RESULTS"),
    (Settings, "journal"): Spec("SQLite journal of row states (default: one per endpoint and workspace in the "
                                 "user's state folder)",
                                 metavar="PATH"),
    (Settings, "root"): Spec("resolve relative paths here and refuse paths outside it: a folder or an s3://, "
                              "gs://, http(s):// prefix (default: the manifest's folder, no containment check)",
                              metavar="DIR|URL"),
    (Settings, "confirm"): Spec("skip the upload-status check (faster: the status cap is 1000/min)"),
    (Settings, "workers"): Spec("image-preparation workers; 0 = one per CPU", metavar="N"),
    (Settings, "use_processes"): Spec("prepare images in processes instead of threads: for long runs of full-size "
                                      "photos (about 0.5 s to start; see docs/performance.md)", flag="--processes"),
    (Settings, "engine"): Spec("where sources are fetched and images prepared: local (this machine's thread or "
                                "process pool) or ray (a Ray cluster's CPUs; install the [ray] extra)",
                                metavar="ENGINE", choices=("local", "ray")),
    (Settings, "ray_address"): Spec("the Ray cluster for --engine ray: auto, HOST:6379 or ray://HOST:10001 "
                                     "(default: RAY_ADDRESS, else a local Ray started for the run)",
                                     metavar="ADDR"),
    (Settings, "shared_fs"): Spec("every node of a multi-node Ray cluster sees the manifest's local paths "
                                   "(without it, local paths on such a cluster are refused)"),
    (Settings, "dry_run"): Spec("read and prepare only: nothing uploaded or changed (with --attach, persons are "
                                "looked up read-only); writes <manifest>.dryrun.parquet"),
    (Settings, "retry_failed"): Spec("on a re-run, leave rows that failed before alone"),
    (Settings, "dedupe"): Spec("upload byte-identical sources once and share the key"),
    (Settings, "limit"): Spec("take at most N rows that need work (new, changed, to re-check or to retry)",
                               metavar="N"),
    (Settings, "log_format"): Spec("console for people, json (one object per line) for cron; auto = console",
                                    env="LOG_FORMAT", choices=("auto", "console", "json")),
    (Settings, "progress"): Spec("no progress bar"),
    (ColumnMap, "path"): Spec("manifest column with the image path", metavar="NAME"),
    (ColumnMap, "id"): Spec("manifest column with the row key, used when present ('' = none)", metavar="NAME"),
    (ColumnMap, "file_name"): Spec("manifest column overriding the uploaded file name ('' = none)",
                                    metavar="NAME"),
    (ColumnMap, "person"): Spec("manifest column with the person's name, used when present ('' = none)",
                                 metavar="NAME"),
    (ColumnMap, "person_id"): Spec("manifest column with an existing person's id ('' = none)", metavar="NAME"),
    (ColumnMap, "primary"): Spec("manifest column marking the person's primary thumbnail: true/1/yes "
                                  "('' = none)", metavar="NAME"),
    (Settings, "attach"): Spec("attach every uploaded thumbnail to its row's person (person / person_id "
                                "columns) before its key expires"),
    (ImagePolicy, "max_input_bytes"): Spec("local source files larger than this are rejected too_large without "
                                            "being read"),
    (ImagePolicy, "max_side"): Spec("downscale so the long side is at most PX pixels (default: only what "
                                     "5 MB requires)", metavar="PX"),
    (ImagePolicy, "keep_metadata"): Spec("keep EXIF/XMP (GPS!) in uploaded files"),
    (ImagePolicy, "verify_pixels"): Spec("fully decode pass-through images"),
}


API, RATES, INPUT, IMAGES, ENGINE, SOURCES, PERSONS, JOURNAL, LOGS = GROUPS = (
    "API and credentials",
    "rates and retries",
    "input and columns",
    "images",
    "engine (where fetch and prepare run)",
    "sources (remote fetch)",
    "persons (--attach)",
    "journal and resuming",
    "output and logs",
)
"""The help's option groups, in the order ``ingest --help`` shows them."""

GROUP_OF: dict[tuple[type, str], str] = {
    **{(ApiSettings, name): API for name in ("workspace", "endpoint", "presign_path", "status_path")},
    **{(ApiSettings, name): RATES for name in (
        "rate", "confirm_rate", "concurrency", "connect_timeout", "read_timeout", "put_timeout_floor",
        "put_min_rate", "max_retry_after", "retry_window", "outage_budget", "max_row_attempts", "confirm_wait",
        "backoff_max", "stop_grace")},
    (Settings, "confirm"): RATES,
    **{(ColumnMap, name): INPUT for name in ("path", "id", "file_name", "person", "person_id", "primary")},
    (Settings, "root"): INPUT,
    (Settings, "id_prefix"): INPUT,
    (Settings, "limit"): INPUT,
    **{(ImagePolicy, name): IMAGES for name in ("max_side", "keep_metadata", "verify_pixels", "max_input_bytes")},
    **{(Settings, name): IMAGES for name in ("workers", "use_processes", "dedupe")},
    **{(Settings, name): ENGINE for name in ("engine", "ray_address", "shared_fs")},
    **{(FetchSettings, name): SOURCES for name in (
        "fetch_concurrency", "fetch_max_bytes_in_flight", "prepared_max_bytes", "source_max_bytes", "fetch_timeout",
        "fetch_retries", "s3_endpoint")},
    (Settings, "attach"): PERSONS,
    **{(AttachSettings, name): PERSONS for name in ("attach_rate", "person_max", "attach_within", "persons_path")},
    **{(Settings, name): JOURNAL for name in ("journal", "journal_wait", "retry_failed", "dry_run")},
    **{(Settings, name): LOGS for name in ("out", "report", "log_format", "progress", "stats", "metrics_file")},
}
"""Each option's help group, keyed like ``HELP_TABLE`` (a field's ``metadata["group"]`` wins)."""

SIZES: frozenset[tuple[type, str]] = frozenset({
    (FetchSettings, "fetch_max_bytes_in_flight"),
    (FetchSettings, "prepared_max_bytes"),
    (FetchSettings, "source_max_bytes"),
    (ImagePolicy, "max_input_bytes"),
})
"""Options that are byte sizes (besides fields whose ``metadata["unit"]`` is ``"bytes"``): they take ``256M``,
``50MB``, ``1.5GiB`` or ``2048`` and show their defaults in units."""
