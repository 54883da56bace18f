"""The run report: one self-contained HTML page of a results manifest (and its journal).

``write_report`` reads the results once in batches (Parquet or CSV; memory flat in their size), samples the
rejected, failed and changed photos uniformly, makes small pixel-only thumbnails of them under a byte budget
(local photos only under the root, remote ones only when asked), and writes a page with no script and no
network access (its Content-Security-Policy forbids both).
The page opens with a headline (rows, runs, when, how long, how fast, the outcome, interrupted or not), then
the rejected and failed photos by reason with each reason's meaning, what the policy changed, throughput run by
run (split by ``run_id``), persons with names, the totals and the journal.
Modules: ``reading`` (batches), ``sampling`` (bounded samples and counters), ``aggregate`` (the one pass),
``runs`` (rows and timelines per run), ``reasons`` (each reason code's meaning), ``thumbs`` (sources and
thumbnails), ``remote`` (``--fetch-thumbnails``), ``charts`` (SVG), ``overview`` (headline, this run, dry run,
throughput), ``page`` (the rest of the HTML), ``markup`` (cells, plurals, sizes, paths, folded tables), ``text``
(escaping, invisible characters as markers), ``journal_view``, ``writer``, ``command`` (the CLI subcommand).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.lazy import exports

if TYPE_CHECKING:
    from pipeline.report.command import add_report_arguments, run_report
    from pipeline.report.reading import ColumnNames
    from pipeline.report.records import ReportCaps, ReportInfo
    from pipeline.report.writer import write_report

__all__ = ["ColumnNames", "ReportCaps", "ReportInfo", "add_report_arguments", "run_report", "write_report"]

__getattr__, __dir__ = exports(
    __name__,
    {
        "add_report_arguments": "pipeline.report.arguments",
        "run_report": "pipeline.report.command",
        "ColumnNames": "pipeline.report.reading",
        "ReportCaps": "pipeline.report.records",
        "ReportInfo": "pipeline.report.records",
        "write_report": "pipeline.report.writer",
    },
    globals(),
)
