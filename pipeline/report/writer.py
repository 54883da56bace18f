"""``write_report``: read a results file once and write its HTML page atomically."""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from pipeline.errors import ConfigError, LocalWriteError
from pipeline.report.aggregate import aggregate
from pipeline.report.arguments import MAX_PER_SECTION
from pipeline.report.journal_view import read_journal
from pipeline.report.page import render
from pipeline.report.reading import ColumnNames
from pipeline.report.records import ReportCaps, ReportInfo
from pipeline.report.remote import prefetch
from pipeline.report.thumbs import ThumbMaker

__all__ = ["MAX_PER_SECTION", "THUMBNAIL_BUDGET", "write_report"]

"""Most photos one contact sheet may show (the page must stay a few MB)."""
THUMBNAIL_BUDGET = 3_000_000
"""Bytes of embedded thumbnails (as base64) per page; further photos become placeholders."""


def write_report(
    results: Path,
    out: Path,
    *,
    journal: Path | None = None,
    thumbnails: bool = True,
    per_section: int = 48,
    caps: ReportCaps | None = None,
    root: Path | str | None = None,
    fetch_thumbnails: bool = False,
    columns: ColumnNames | None = None,
    now: datetime | None = None,
) -> ReportInfo:
    """Write the HTML report of the results file ``results`` (Parquet or CSV) to ``out`` and say what it wrote.

    Reads ``results`` once, in batches (memory flat in its size). Photos are found like the manifest finds
    them, and read only under ``root`` (default: the results file's folder), symlinks resolved: a photo whose
    real location is outside is listed as not shown, never opened. Remote photos (``s3://``, ``gs://``,
    ``http(s)://``, and relative paths under a remote ``root`` given as text) are fetched only with
    ``fetch_thumbnails`` (through ``pipeline.fetch``), else listed as not fetched. ``thumbnails=False`` leaves
    every photo out. At most
    ``per_section`` photos per contact sheet (1..``MAX_PER_SECTION``). The file at ``out`` is replaced only by
    a complete page. Raises ``ConfigError`` for an unreadable results file or a bad ``per_section``, and
    ``LocalWriteError`` when ``out`` cannot be written.
    """
    results, out = Path(results), Path(out)
    if not 1 <= per_section <= MAX_PER_SECTION:
        raise ConfigError(f"--per-section must be between 1 and {MAX_PER_SECTION}; got {per_section}.")
    if out.absolute() == results.absolute():
        raise ConfigError(f"The report {out} would replace the results file itself; choose another -o.")
    caps = caps or ReportCaps()
    names = columns or ColumnNames()
    data = aggregate(results, names=names, per_section=per_section, caps=caps)
    if journal is not None:
        data = replace(data, journal=read_journal(journal))
    maker = ThumbMaker(root if root is not None else results.absolute().parent, enabled=thumbnails,
                       budget=THUMBNAIL_BUDGET, fetch=fetch_thumbnails)
    prefetch(maker, [r.path for _, _, rows in data.samples for r in rows]
             + [r.path for sample in data.changed for r in sample.rows])  # in page order: the budget fills alike
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    page = render(data, maker, caps, generated=moment.strftime("%Y-%m-%d %H:%M UTC"), columns=data.named_by)
    encoded = page.encode("utf-8")
    _write_atomically(out, encoded)
    return ReportInfo(path=out, size_bytes=len(encoded), rows=data.rows, by_status=data.by_status,
                      thumbnails=maker.made, placeholders=maker.placeholders)


def _write_atomically(out: Path, data: bytes) -> None:
    temp = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        temp.replace(out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise LocalWriteError(f"The report {out} could not be written ({exc.strerror or exc}).") from exc
