"""The ``report`` subcommand: its arguments and what running it does (``pipeline.cli`` registers both)."""

from __future__ import annotations

import argparse
from pathlib import Path

import structlog

from pipeline.fetch.refs import root_location
from pipeline.models import ExitCode
from pipeline.report.reading import ColumnNames
from pipeline.report.records import ReportCaps
from pipeline.report.writer import MAX_PER_SECTION, write_report

__all__ = ["add_report_arguments", "default_journal", "default_out", "run_report"]

log = structlog.get_logger("pipeline")
_CAPS = ReportCaps()
_RESULT_SUFFIXES = (".results", ".dryrun")


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``report`` subcommand's arguments to ``parser``."""
    parser.add_argument("results", type=Path, help="the results manifest of a run or a dry run (.parquet, .csv)")
    parser.add_argument("-o", "--out", type=Path, default=None,
                        help="the HTML file to write (default: the results path with .html)")
    parser.add_argument("--journal", type=Path, default=None,
                        help="the run's journal (default: <manifest>.journal.sqlite beside the results, if there)")
    parser.add_argument("--root", type=root_location, default=None, metavar="DIR|URL",
                        help="folder relative photo paths are read from; no photo is read outside it, symlinks "
                             "resolved (default: the results' folder); an s3://, gs:// or http(s):// root makes "
                             "relative paths remote photos")
    parser.add_argument("--fetch-thumbnails", action="store_true",
                        help="fetch the sampled remote photos (s3://, gs://, http(s)://) for their thumbnails; "
                             "without it they are listed as not fetched")
    parser.add_argument("--no-thumbnails", dest="thumbnails", action="store_false",
                        help="leave the photos out (for reports that are shared)")
    parser.add_argument("--per-section", type=int, default=48,
                        help=f"photos per contact sheet, 1..{MAX_PER_SECTION}")
    parser.add_argument("--rate", type=float, default=_CAPS.presign_per_s, help="presign cap, calls/s")
    parser.add_argument("--confirm-rate", type=float, default=_CAPS.status_per_min, help="status cap, calls/min")
    parser.add_argument("--no-confirm", dest="confirm", action="store_false",
                        help="the run does not check each upload's status")
    parser.add_argument("--attach-rate", type=float, default=_CAPS.attach_per_s, help="person calls cap, calls/s")
    parser.add_argument("--path-column", default="path", help="the manifest's path column")
    parser.add_argument("--id-column", default="id", help="the manifest's row-key column")
    parser.add_argument("--person-column", default="person", help="the manifest's person-name column")


def default_out(results: Path) -> Path:
    """``x.results.parquet`` -> ``x.results.html``, beside the results."""
    return results.with_suffix(".html")


def default_journal(results: Path) -> Path | None:
    """The journal a default-named results file came with (``m.results.parquet`` -> ``m.journal.sqlite``),
    when that file exists."""
    stem = results.name[: -len(results.suffix)] if results.suffix else results.name
    for suffix in _RESULT_SUFFIXES:
        if stem.endswith(suffix):
            candidate = results.with_name(stem[: -len(suffix)] + ".journal.sqlite")
            return candidate if candidate.is_file() else None
    return None


def run_report(ns: argparse.Namespace) -> int:
    """Write the report the parsed arguments ask for; return the exit code. ``ConfigError`` (exit 2) and
    ``LocalWriteError`` (exit 1) propagate to the CLI, which prints them as one sentence."""
    results: Path = ns.results
    out = ns.out if ns.out is not None else default_out(results)
    journal = ns.journal if ns.journal is not None else default_journal(results)
    caps = ReportCaps(presign_per_s=ns.rate, status_per_min=ns.confirm_rate, attach_per_s=ns.attach_rate,
                      status_checks=ns.confirm)
    info = write_report(results, out, journal=journal, thumbnails=ns.thumbnails, per_section=ns.per_section,
                        caps=caps, root=ns.root, fetch_thumbnails=ns.fetch_thumbnails,
                        columns=ColumnNames(path=ns.path_column, id=ns.id_column, person=ns.person_column))
    log.info("report_written", path=str(info.path), bytes=info.size_bytes, rows=info.rows,
             thumbnails=info.thumbnails, placeholders=info.placeholders)
    return int(ExitCode.OK)
