"""The ``report`` subcommand: its arguments and what running it does (``pipeline.cli`` registers both)."""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
from pathlib import Path

import structlog

from pipeline.journal.location import state_folder
from pipeline.journal.opening import connect_read_only
from pipeline.models import ExitCode
from pipeline.report.arguments import add_report_arguments
from pipeline.report.reading import ColumnNames
from pipeline.report.records import ReportCaps
from pipeline.report.writer import write_report

# add_report_arguments lives in a leaf module (arguments.py)
__all__ = ["add_report_arguments", "default_journal", "default_out", "journal_of_run", "latest_run", "run_report"]

log = structlog.get_logger("pipeline")
_CAPS = ReportCaps()
_RESULT_SUFFIXES = (".results", ".dryrun")


def default_out(results: Path) -> Path:
    """``x.results.parquet`` -> ``x.results.html``, beside the results."""
    return results.with_suffix(".html")


def default_journal(results: Path) -> Path | None:
    """The journal of the run that wrote ``results``, when it can be found: the one a default-named results file
    came with beside it (``m.results.parquet`` -> ``m.journal.sqlite``, older releases), else the journal in
    the state folder (``journal.location``: one per endpoint and workspace) that holds the results' latest run."""
    stem = results.name[: -len(results.suffix)] if results.suffix else results.name
    for suffix in _RESULT_SUFFIXES:
        if stem.endswith(suffix):
            candidate = results.with_name(stem[: -len(suffix)] + ".journal.sqlite")
            if candidate.is_file():
                return candidate
    return journal_of_run(latest_run(results))


def latest_run(results: Path) -> str | None:
    """The latest ``run_id`` in a results file (run ids sort by their start time); ``None`` when it has none
    or cannot be read (the report then says what is wrong with it)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    try:
        if results.suffix.lower() in (".csv", ".tsv", ".gz"):
            column = pcsv.read_csv(results, convert_options=pcsv.ConvertOptions(
                include_columns=["run_id"], column_types={"run_id": pa.string()})).column("run_id")
        else:
            column = pq.read_table(results, columns=["run_id"]).column("run_id")
        latest = pc.max(column).as_py()
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None
    return str(latest) if latest else None


def journal_of_run(run_id: str | None, limit: int = 50) -> Path | None:
    """The journal in the state folder whose rows name ``run_id`` (the most recently written first, at most
    ``limit`` looked at, each read-only: a running ingest is never waited for)."""
    if run_id is None:
        return None
    try:
        found = sorted((state_folder() / "journals").glob("*/*.sqlite"), key=lambda p: p.stat().st_mtime,
                       reverse=True)
    except OSError:
        return None
    for path in found[:limit]:
        conn = None
        try:
            conn = connect_read_only(path)
            if conn.execute("SELECT 1 FROM rows WHERE run_id = ? LIMIT 1", (run_id,)).fetchone():
                return path
        except sqlite3.Error:
            continue  # another release's journal, or one being written: not this one
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
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
