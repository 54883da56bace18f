"""The ``report`` subcommand: its arguments and what running it does (``pipeline.cli`` registers both)."""

from __future__ import annotations

import argparse
from pathlib import Path

import structlog

from pipeline.models import ExitCode
from pipeline.report.arguments import add_report_arguments
from pipeline.report.reading import ColumnNames
from pipeline.report.records import ReportCaps
from pipeline.report.writer import write_report

__all__ = ["add_report_arguments", "default_journal", "default_out", "run_report"]  # arguments: a leaf module

log = structlog.get_logger("pipeline")
_CAPS = ReportCaps()
_RESULT_SUFFIXES = (".results", ".dryrun")


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
