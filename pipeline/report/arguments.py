"""The ``report`` subcommand's arguments: a leaf module (argparse and the caps' defaults only), so building the
command's parser loads neither pyarrow nor the HTML renderer."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.fetch.refs import root_location
from pipeline.report.records import ReportCaps

__all__ = ["MAX_PER_SECTION", "add_report_arguments"]

MAX_PER_SECTION = 200
"""The most photos a contact sheet shows."""

CAPS = ReportCaps()


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``report`` subcommand's arguments to ``parser``."""
    parser.add_argument("results", type=Path, help="the results manifest of a run or a dry run (.parquet, .csv)")
    parser.add_argument("-o", "--out", type=Path, default=None,
                        help="the HTML file to write (default: the results path with .html)")
    parser.add_argument("--journal", type=Path, default=None,
                        help="the run's journal (default: the one that holds the results' latest run, in the state "
                             "folder, or <manifest>.journal.sqlite beside the results)")
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
    parser.add_argument("--rate", type=float, default=CAPS.presign_per_s, help="presign cap, calls/s")
    parser.add_argument("--confirm-rate", type=float, default=CAPS.status_per_min, help="status cap, calls/min")
    parser.add_argument("--no-confirm", dest="confirm", action="store_false",
                        help="the run does not check each upload's status")
    parser.add_argument("--attach-rate", type=float, default=CAPS.attach_per_s, help="person calls cap, calls/s")
    parser.add_argument("--path-column", default="path", help="the manifest's path column")
    parser.add_argument("--id-column", default="id", help="the manifest's row-key column")
    parser.add_argument("--person-column", default="person", help="the manifest's person-name column")
