"""The help text of the ``ingest`` options whose settings field carries no ``help`` metadata of its own (fields
owned by modules that should not know about the CLI: ``Settings``, ``ColumnMap``, ``ImagePolicy``, part of
``ApiSettings``). ``options`` reads it; nothing else does."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.client.settings import ApiSettings
from pipeline.config import ColumnMap, Settings
from pipeline.models import ImagePolicy

__all__ = ["HELP_TABLE", "Spec"]


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
    (Settings, "use_processes"): Spec("prepare images in processes instead of threads", flag="--processes"),
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
    (ImagePolicy, "max_side"): Spec("downscale so the long side is at most PX pixels (default: only what "
                                     "5 MB requires)", metavar="PX"),
    (ImagePolicy, "keep_metadata"): Spec("keep EXIF/XMP (GPS!) in uploaded files"),
    (ImagePolicy, "verify_pixels"): Spec("fully decode pass-through images"),
}
