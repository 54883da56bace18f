"""The run report: one self-contained HTML page of a results manifest (and its journal).

``write_report`` reads the results once in batches (Parquet or CSV; memory flat in their size), samples the
rejected, failed and changed photos uniformly, makes small pixel-only thumbnails of them under a byte budget
(local photos only under the root, remote ones only when asked), and writes a page with no script and no
network access (its Content-Security-Policy forbids both).
Modules: ``reading`` (batches), ``sampling`` (bounded samples and counters), ``aggregate`` (the one pass),
``thumbs`` (sources and thumbnails), ``remote`` (``--fetch-thumbnails``), ``charts`` (SVG), ``page`` (HTML),
``text`` (escaping, invisible characters as markers), ``journal_view``, ``writer``, ``command`` (the CLI
subcommand).
"""

from pipeline.report.command import add_report_arguments, run_report
from pipeline.report.reading import ColumnNames
from pipeline.report.records import ReportCaps, ReportInfo
from pipeline.report.writer import write_report

__all__ = ["ColumnNames", "ReportCaps", "ReportInfo", "add_report_arguments", "run_report", "write_report"]
