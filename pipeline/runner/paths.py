"""Where a run reads and writes: the default results path beside the manifest, the default journal (one per
endpoint and workspace in the user's state folder, ``journal.location``; an older release's journal beside the
manifest is still used), the refusal of two roles naming one file, and whether an existing results file holds
keys (a dry run never replaces one that does)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import structlog

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.journal.location import default_journal, legacy_journal, manifest_stem
from pipeline.results import check_results_target, remove_stale_temps
from pipeline.runner.stats import check_metrics_target

if TYPE_CHECKING:
    from pipeline.manifest import Manifest, ManifestInfo

__all__ = ["RunPaths", "check_distinct", "check_targets", "holds_keys", "run_paths"]

log = structlog.get_logger("pipeline.runner")


@dataclass(frozen=True, slots=True)
class RunPaths:
    """Where a run reads and writes. ``journal`` is the real journal (a dry run reads a copy of it);
    ``journal_beside_manifest`` says it is an older release's default journal found beside the manifest."""

    manifest: Path | None
    out: Path | None
    journal: Path
    journal_beside_manifest: bool = False


def run_paths(settings: Settings, manifest_path: Path | None) -> RunPaths:
    """Defaults: results ``<manifest>.results.parquet`` beside the manifest (a dry run:
    ``<manifest>.dryrun.parquet``; in-memory input: none); journal ``journal.location.default_journal`` of the
    endpoint and workspace, unless ``<manifest>.journal.sqlite`` (an older release's default) exists beside the
    manifest. Never derived from ``--out``, so changing ``--out`` never re-uploads. Reads no file."""
    out, journal, beside = settings.out, settings.journal, False
    if manifest_path is not None and out is None:
        suffix = ".dryrun.parquet" if settings.dry_run else ".results.parquet"
        out = manifest_path.with_name(manifest_stem(manifest_path) + suffix)
    if journal is None and manifest_path is not None and legacy_journal(manifest_path).is_file():
        journal, beside = legacy_journal(manifest_path), True
    if journal is None:
        journal = default_journal(settings.api.endpoint, settings.api.workspace)
    return RunPaths(manifest_path, out, journal, beside)


def check_distinct(paths: RunPaths, report: Path | None, *, manifest_is_file: bool = True) -> None:
    """Raise ``ConfigError`` (one sentence) when two of the manifest (when it is a local file), the results,
    the journal and the report are the same file: the same file when both exist (``os.path.samefile``: hard
    and symbolic links too), else the same resolved path. Writing one over another would destroy it
    (``--journal`` equal to ``--out`` once wiped the journal)."""
    named = {"manifest": paths.manifest if manifest_is_file else None, "results (--out)": paths.out,
             "journal (--journal)": paths.journal, "report (--report)": report}
    seen: list[tuple[str, Path]] = []
    for role, path in named.items():
        if path is None:
            continue
        for other, earlier in seen:
            if _same(path, earlier):
                raise ConfigError(f"The {other} and the {role} are the same file ({path}): each needs its own "
                                  "file, so choose another path for one of them.")
        seen.append((role, path))


def check_targets(settings: Settings, manifest: Manifest, info: ManifestInfo, paths: RunPaths) -> None:
    """The results file and the metrics file can be written as asked (else ``ConfigError``: a format that
    cannot hold the manifest's columns, a dry run over a results file holding keys), before the journal is
    touched; stale temp files of killed runs are removed. Says so when an older release's journal beside the
    manifest is used."""
    if paths.journal_beside_manifest:
        moved = default_journal(settings.api.endpoint, settings.api.workspace)
        log.warning("journal_found_beside_manifest", journal=str(paths.journal),
                    action="using it (an earlier release's default); to move on, pass --journal with this path, "
                           f"or move the file to {moved}")
    if paths.out is not None:
        check_results_target(paths.out, manifest.schema, manifest=paths.manifest, rows=info.rows)
        if settings.dry_run and paths.out.exists() and holds_keys(paths.out):
            raise ConfigError(f"{paths.out} holds the keys of a real run; a dry run does not replace it: "
                              "choose another --out.")
        remove_stale_temps(paths.out)
    check_metrics_target(settings.metrics_file)


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
        return a.resolve() == b.resolve()
    except OSError:  # an unreadable folder, a symlink loop: compare what was written
        return a.absolute() == b.absolute()


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
