"""Where a run reads and writes: the default results and journal paths beside the manifest, and whether an
existing results file holds keys (a dry run never replaces one that does)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import Settings

__all__ = ["RunPaths", "holds_keys", "run_paths"]


@dataclass(frozen=True, slots=True)
class RunPaths:
    """Where a run reads and writes. ``journal`` is the real journal (a dry run reads a copy of it)."""

    manifest: Path | None
    out: Path | None
    journal: Path | None


def run_paths(settings: Settings, manifest_path: Path | None) -> RunPaths:
    """Defaults: results ``<manifest>.results.parquet`` (a dry run: ``<manifest>.dryrun.parquet``) and journal
    ``<manifest>.journal.sqlite``, both beside the manifest; never derived from ``--out``, so changing ``--out``
    never re-uploads. In-memory input has no default (the Python API picks a journal for it)."""
    out, journal = settings.out, settings.journal
    if manifest_path is not None:
        stem = manifest_path.name
        for suffix in (".csv.gz", ".tsv.gz", manifest_path.suffix):
            if suffix and stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        if out is None:
            out = manifest_path.with_name(stem + (".dryrun.parquet" if settings.dry_run else ".results.parquet"))
        if journal is None:
            journal = manifest_path.with_name(stem + ".journal.sqlite")
    return RunPaths(manifest_path, out, journal)


def holds_keys(path: Path) -> bool:
    """Whether an existing results file holds any thumbnail key (a dry run must not replace it)."""
    try:
        if path.suffix.lower() == ".csv":
            with path.open(encoding="utf-8", errors="replace") as fh:
                header = fh.readline()
                return "thumbnail_key" in header and any(line.strip() for line in fh)
        column = pq.read_table(path, columns=["thumbnail_key"]).column(0)
        return bool(column.null_count < len(column))
    except (OSError, KeyError, pa.ArrowException):
        return False
