"""``thumbnail-ingest`` / ``python -m pipeline``: argv -> Settings -> run -> exit code. No business logic.

Exit codes: 0 every row uploaded, rejected or skipped; 1 some rows failed (a re-run resumes); 2 usage or
configuration error; 3 a fatal API answer stopped the run; 130 interrupted (state saved).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import structlog

from pipeline import logs
from pipeline.errors import ConfigError, IngestError

__all__ = ["build_parser", "main"]

from pipeline.models import ExitCode

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_FATAL, EXIT_INTERRUPTED = (
    ExitCode.OK, ExitCode.FAILED, ExitCode.USAGE, ExitCode.FATAL, ExitCode.INTERRUPTED)
ENV_PREFIX = "THUMBNAIL_INGEST_"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2 (no usage dump for cron mail)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(EXIT_USAGE)


class _Help(argparse.HelpFormatter):
    """Shows each option's default, except for on/off switches where it would only confuse."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        switch = default is None or default is True or default is False or default == argparse.SUPPRESS
        if "(default:" in text or switch or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected zero or more, got {value}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"expected zero (unlimited) or a positive number, got {text}")
    return value


def _add_ingest(sub: argparse._SubParsersAction[_Parser], env: Mapping[str, str]) -> None:
    p = sub.add_parser(
        "ingest", help="upload the photos of a manifest", formatter_class=_Help,
        description="Read MANIFEST (.csv or .parquet; column 'path' required, 'id' and 'file_name' optional), make "
        "each photo acceptable to the API or reject it with a reason, upload each accepted photo exactly once, and "
        "write a results manifest. Credentials: NCLOUD_ACCESS_KEY/NCLOUD_SECRET_KEY, else ~/.ncloud/configure. "
        "Re-running the same command resumes from the journal.",
    )

    def e(name: str, default: str | None = None) -> str | None:
        return env.get(ENV_PREFIX + name, default)

    p.add_argument("manifest", type=Path, help="the manifest file (.csv, .parquet)")
    p.add_argument("--workspace", default=e("WORKSPACE"), help="MI workspace name [env THUMBNAIL_INGEST_WORKSPACE]")
    p.add_argument("--endpoint", default=e("ENDPOINT", "https://mi.apigw.ntruss.com"), help="API base URL")
    p.add_argument("--out", type=Path, help="results manifest, .parquet or .csv (default: <manifest>.results.parquet)")
    p.add_argument("--journal", type=Path, help="SQLite journal (default: beside the results)")
    p.add_argument("--root", type=Path, help="resolve relative paths here and refuse paths outside it "
                   "(default: the manifest's folder, no containment check)")
    p.add_argument("--rate", type=_rate, default=50.0, metavar="PER_SECOND",
                   help="presign calls per second, never exceeded in any 1 s window; 0 = unlimited")
    p.add_argument("--confirm-rate", type=_rate, default=1000.0, metavar="PER_MINUTE",
                   help="upload-status calls per minute, never exceeded in any 60 s window; 0 = unlimited")
    p.add_argument("--no-confirm", dest="confirm", action="store_false", help="skip the upload-status check")
    p.add_argument("--concurrency", type=_positive_int, default=16, metavar="N", help="rows uploading at once")
    p.add_argument("--workers", type=_positive_int, default=0, metavar="N", help="image workers, 0 = one per CPU")
    p.add_argument("--processes", action="store_true", help="prepare images in processes instead of threads")
    p.add_argument("--max-side", type=_positive_int, metavar="PX",
                   help="downscale so the long side is at most PX pixels (default: only what 5 MB requires)")
    p.add_argument("--keep-metadata", action="store_true", help="keep EXIF/XMP (GPS!) in uploaded files")
    p.add_argument("--verify-pixels", action="store_true", help="fully decode pass-through images")
    p.add_argument("--dedupe", action="store_true", help="upload byte-identical sources once, share the key")
    p.add_argument("--no-retry-failed", dest="retry_failed", action="store_false",
                   help="on a re-run, leave rows that failed before alone")
    p.add_argument("--dry-run", action="store_true", help="read and prepare only; no API call, no journal")
    p.add_argument("--path-column", default="path", help="manifest column with the image path")
    p.add_argument("--id-column", default="id", help="manifest column with the row id (used if present)")
    p.add_argument("--file-name-column", default="file_name", help="column overriding the uploaded file name")
    p.add_argument("--presign-path", default="/api/v1/workspaces/{workspace}/person-thumbnail/uploads/presigned-url",
                   help="presign URI template")
    p.add_argument("--status-path", default="/api/v1/workspaces/{workspace}/person-thumbnail/uploads/complete",
                   help="upload-status URI template")
    p.add_argument("--log-format", choices=("console", "json"), default=e("LOG_FORMAT", "console"),
                   help="console for people, json (one object per line) for cron")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def build_parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The full parser: ``ingest``, ``emulator`` and ``demo`` subcommands."""
    from pipeline.emulator import add_emulator_arguments

    env = os.environ if env is None else env
    parser = _Parser(prog="thumbnail-ingest", description="Bulk-load person photos into NAVER Cloud Media "
                     "Intelligence. Start with `thumbnail-ingest demo`.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_ingest(sub, env)
    em = sub.add_parser("emulator", help="run the local emulator of the API",
                        formatter_class=_Help)
    add_emulator_arguments(em)
    demo = sub.add_parser("demo", help="generate a sample archive and ingest it against the in-process emulator",
                          formatter_class=_Help)
    demo.add_argument("--dir", type=Path, default=Path("demo-output"), help="where the archive and results go")
    demo.add_argument("--count", type=_positive_int, default=300, help="photos in the sample archive")
    demo.add_argument("--log-format", choices=("console", "json"), default="console")
    demo.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser


def _ingest(ns: argparse.Namespace) -> int:
    from pipeline import runner
    from pipeline.progress import render_summary
    from pipeline.python_api import make_settings

    if not ns.workspace:
        raise ConfigError("A workspace is required: pass --workspace NAME or set THUMBNAIL_INGEST_WORKSPACE.")
    settings = make_settings(
        workspace=ns.workspace, endpoint=ns.endpoint, out=ns.out, journal=ns.journal, root=ns.root,
        rate=ns.rate, confirm_rate=ns.confirm_rate, confirm=ns.confirm, concurrency=max(1, ns.concurrency),
        workers=ns.workers, use_processes=ns.processes, max_side=ns.max_side, dry_run=ns.dry_run,
        retry_failed=ns.retry_failed, dedupe=ns.dedupe, keep_metadata=ns.keep_metadata,
        verify_pixels=ns.verify_pixels, path_column=ns.path_column, id_column=ns.id_column or None,
        file_name_column=ns.file_name_column or None, presign_path=ns.presign_path, status_path=ns.status_path,
        progress=ns.progress, log_format=ns.log_format,
    )
    summary = runner.run(settings, ns.manifest, handle_signals=True)
    if ns.log_format != "json":
        sys.stderr.write(render_summary(summary) + "\n")
    if summary.error:
        sys.stderr.write(f"thumbnail-ingest: stopped: {summary.error}\n")
    return summary.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the subcommand, and return the exit code (never a traceback for user errors)."""
    args = list(sys.argv[1:] if argv is None else argv)
    logs.configure_logging("console")
    try:
        ns = build_parser().parse_args(args)
        logs.configure_logging(getattr(ns, "log_format", "console"))
        if ns.command == "ingest":
            return _ingest(ns)
        if ns.command == "emulator":
            from pipeline.emulator import config_from_args, run_emulator

            run_emulator(config_from_args(ns, os.environ))
            return EXIT_OK
        from pipeline.demo import run_demo

        return run_demo(ns.dir, count=ns.count, progress=ns.progress, log_format=ns.log_format)
    except ConfigError as exc:
        sys.stderr.write(f"thumbnail-ingest: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("thumbnail-ingest: interrupted; state saved, run the same command again to resume\n")
        return EXIT_INTERRUPTED
    except IngestError as exc:
        structlog.get_logger("pipeline.cli").error("run_error", error=str(exc))
        sys.stderr.write(f"thumbnail-ingest: error: {exc}\n")
        return EXIT_FAILED
