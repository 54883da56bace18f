"""``thumbnail-ingest`` / ``python -m pipeline``: argv -> Settings -> run -> exit code. No business logic.

The ``ingest`` options are generated from the settings dataclasses (``pipeline.options``). Everything this
command writes goes to stderr (``--help`` and ``--version`` excepted); with ``--log-format json`` every line,
errors included, is one JSON object.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from pipeline import __version__, logs, option_args, options
from pipeline.errors import ConfigError, IngestError, JournalBusyError
from pipeline.journal.location import STATE_DIR_ENV
from pipeline.models import ExitCode
from pipeline.option_help import LOGS
from pipeline.redaction import redact_text
from pipeline.sizes import SIZE_RULE

__all__ = ["build_parser", "main"]

ENV_PREFIX = options.ENV_PREFIX
PROG = "thumbnail-ingest"
log = structlog.get_logger("pipeline.cli")

ENVIRONMENT = (
    ("NCLOUD_ACCESS_KEY", "API access key (else ~/.ncloud/configure)"),
    ("NCLOUD_SECRET_KEY", "API secret key (else ~/.ncloud/configure); never a flag"),
    (f"{ENV_PREFIX}WORKSPACE", "default of --workspace"),
    (f"{ENV_PREFIX}ENDPOINT", "default of --endpoint"),
    (f"{ENV_PREFIX}LOG_FORMAT", "default of --log-format"),
    (f"{ENV_PREFIX}LOG_LEVEL", "default of --log-level"),
    (STATE_DIR_ENV, "folder of the default journals (else the user's state folder)"),
    ("NO_COLOR", "set to anything: no colours in console logs"),
    ("AWS_ACCESS_KEY_ID", "s3:// sources: with AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION"),
    ("AWS_PROFILE", "s3:// sources: a profile of ~/.aws/credentials and ~/.aws/config"),
    ("AWS_ENDPOINT_URL", "s3:// sources: an S3-compatible endpoint (--s3-endpoint wins)"),
    ("GOOGLE_APPLICATION_CREDENTIALS", "gs:// sources: Google application default credentials"),
)


EXIT_MEANINGS = {
    ExitCode.OK: "every row ended uploaded, attached, rejected or skipped",
    ExitCode.FAILED: "some rows failed (or a local write failed); run the same command again to retry them",
    ExitCode.USAGE: "usage, manifest or configuration error; nothing was uploaded",
    ExitCode.FATAL: "a fatal API answer (credentials, permission, workspace, quota, endpoint) stopped the run",
    ExitCode.BUSY: "another run holds the journal (cron: last night's run is still going); nothing was done, "
                   "try again later",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C, SIGTERM); state saved, a re-run resumes",
}


def _epilog(*, sizes: bool = False) -> str:
    codes = "\n".join(f"  {code.value:<5}{EXIT_MEANINGS[code]}" for code in ExitCode)
    width = max(len(name) for name, _ in ENVIRONMENT) + 2
    env = "\n".join(f"  {name:<{width}}{what}" for name, what in ENVIRONMENT)
    rule = f"SIZE {SIZE_RULE}\n\n" if sizes else ""
    return f"{rule}exit codes:\n{codes}\n\nenvironment:\n{env}"


class UsageError(ConfigError):
    """A command line argparse refused (unknown flag, bad value): exit 2 like every configuration error."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are raised as ``UsageError``, so ``main`` reports them like every other
    error: one sentence in console mode, one JSON line in json mode, exit 2, no usage dump for cron mail."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (``50``, not ``50.0``), except for on/off switches and empty texts where it
    would only confuse; keeps the epilog's tables as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        switch = default is None or default is True or default is False or default in (argparse.SUPPRESS, "")
        if "(default:" in text or switch or not action.option_strings:
            return text
        if isinstance(default, float):
            return text + f" (default: {default:g})"
        return text + " (default: %(default)s)"


def _level(text: str) -> str:
    try:
        logs.level_number(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.lower()


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def _add_log_flags(p: argparse.ArgumentParser | argparse._ArgumentGroup, env: Mapping[str, str], *,
                   with_format: bool, level: str = "info") -> None:
    if with_format:
        p.add_argument("--log-format", choices=("auto", "console", "json"),
                       default=env.get(f"{ENV_PREFIX}LOG_FORMAT") or "auto",
                       help=f"console for people, json (one object per line) for cron [env {ENV_PREFIX}LOG_FORMAT]")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--log-level", type=_level, default=env.get(f"{ENV_PREFIX}LOG_LEVEL") or level,
                       metavar="LEVEL", help=f"debug, info, warning or error [env {ENV_PREFIX}LOG_LEVEL]")
    group.add_argument("-q", "--quiet", dest="log_level", action="store_const", const="warning",
                       help="only warnings and errors (same as --log-level warning)")
    group.add_argument("-v", "--verbose", dest="log_level", action="store_const", const="debug",
                       help="every event, each retry included (same as --log-level debug)")


def _add_ingest(sub: argparse._SubParsersAction[_Parser], env: Mapping[str, str]) -> None:
    p = sub.add_parser(
        "ingest", help="upload the photos of a manifest", formatter_class=_Help, epilog=_epilog(sizes=True),
        usage="%(prog)s [options] MANIFEST",  # the options are listed below, by group: not all again up here
        description="Read MANIFEST (.csv or .parquet; column 'path' required, 'id' and 'file_name' optional),\n"
        "make each photo acceptable to the API or reject it with a reason, upload each accepted photo\n"
        "exactly once, and write a results manifest. Re-running the same command resumes from the journal.\n"
        "Credentials: NCLOUD_ACCESS_KEY/NCLOUD_SECRET_KEY, else ~/.ncloud/configure.",
    )
    p.add_argument("manifest", help="the manifest: a .csv/.tsv (gzipped too) or .parquet file, or its "
                   "s3://, gs:// or https:// URL")
    groups = option_args.add_options(p, env)
    _add_log_flags(groups[LOGS], env, with_format=False)


def _add_report(sub: argparse._SubParsersAction[_Parser]) -> None:
    help_text = "write a self-contained HTML page of a run's results"
    add_arguments = getattr(_report_module(), "add_report_arguments", None)
    p = sub.add_parser("report", help=help_text, formatter_class=_Help)
    if add_arguments is None:
        # This build has no report module: the subcommand exists and says so when run.
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return
    add_arguments(p)


def _report_module() -> Any:
    """``pipeline.report`` imported on demand (it pulls in the HTML renderer), or ``None`` if absent."""
    try:
        return importlib.import_module("pipeline.report")
    except ImportError:
        return None


def build_parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The full parser: ``ingest``, ``emulator``, ``demo`` and ``report`` subcommands, and ``--version``.

    Usage errors raise ``UsageError`` (a ``ConfigError``) instead of exiting."""
    from pipeline.emulator.arguments import add_emulator_arguments

    env = os.environ if env is None else env
    parser = _Parser(prog=PROG, formatter_class=_Help, epilog=_epilog(),
                     description="Bulk-load person photos into NAVER Cloud Media Intelligence.\n"
                     "Start with `thumbnail-ingest demo`; `thumbnail-ingest ingest --help` lists every option.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_ingest(sub, env)
    em = sub.add_parser("emulator", help="run the local emulator of the API", formatter_class=_Help,
                        description="Run a local emulator of the Media Intelligence API until stopped.")
    add_emulator_arguments(em)
    demo = sub.add_parser("demo", help="generate a sample archive and ingest it against the emulator (a child process)",
                          formatter_class=_Help, epilog=_epilog())
    demo.add_argument("--dir", type=Path, default=Path("demo-output"), help="where the archive and results go")
    demo.add_argument("--count", type=_count, default=300, help="photos in the sample archive")
    demo.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    # The demo's summary counts its rejections by reason: one log line per rejected row would bury it (-v shows them).
    _add_log_flags(demo, env, with_format=True, level="warning")
    _add_report(sub)
    return parser


def _early_format(args: Sequence[str], env: Mapping[str, str]) -> str:
    """The log format asked for, found before parsing so that even a usage error is reported in it."""
    fmt = env.get(f"{ENV_PREFIX}LOG_FORMAT") or "auto"
    for i, arg in enumerate(args):
        if arg == "--log-format" and i + 1 < len(args):
            fmt = args[i + 1]
        elif arg.startswith("--log-format="):
            fmt = arg.split("=", 1)[1]
    return fmt if fmt in ("auto", "console", "json") else "auto"


class _Out:
    """The CLI's own messages: plain sentences on stderr in console mode, structlog events in json mode."""

    def __init__(self, fmt: str) -> None:
        self.json = fmt == "json"

    def error(self, event: str, message: str, **fields: Any) -> None:
        if self.json:
            log.error(event, error=message, **fields)
        else:
            logs.STDERR.write(f"{PROG}: error: {redact_text(message)}\n")

    def text(self, text: str) -> None:
        logs.STDERR.write(text + "\n")


def _ingest(ns: argparse.Namespace, out: _Out) -> int:
    from pipeline import runner
    from pipeline.progress import render_summary

    settings = options.build_settings({o.keyword: getattr(ns, o.keyword) for o in options.OPTIONS}, style="cli")
    # Configured again now that the secret is known: from here on it is redacted from every event. In console
    # mode the sentence of a stopped run is said once, first in the summary, not also as a log line.
    logs.configure_logging(settings.log_format, level=ns.log_level, secrets=[settings.api.credentials.secret_key],
                           held=() if out.json else logs.STOP_EVENTS)
    summary = runner.run(settings, ns.manifest, handle_signals=True)
    logs.flush_retry_summary()
    if out.json:
        if summary.error:
            log.error("run_stopped", error=summary.error, error_type=summary.fatal_type,
                      exit_code=int(summary.exit_code))
        log.info("run_finished", **summary.as_dict())
    else:
        out.text(render_summary(summary, dry_run=settings.dry_run))
    return int(summary.exit_code)


def _report(ns: argparse.Namespace) -> int:
    run_report = getattr(_report_module(), "run_report", None)
    if run_report is None:
        raise ConfigError("The report subcommand is not part of this build.")
    return int(run_report(ns))


def _dispatch(ns: argparse.Namespace, out: _Out) -> int:
    fmt = getattr(ns, "log_format", "auto")
    logs.configure_logging(fmt, level=getattr(ns, "log_level", "info"))
    if ns.command == "ingest":
        return _ingest(ns, out)
    if ns.command == "emulator":
        from pipeline.emulator import config_from_args, run_emulator

        run_emulator(config_from_args(ns, os.environ))
        return int(ExitCode.OK)
    if ns.command == "report":
        return _report(ns)
    from pipeline.demo import run_demo

    return run_demo(ns.dir, count=ns.count, progress=ns.progress, log_format=fmt)


def _fill_closed_std_streams() -> None:
    """Give a standard descriptor (0, 1, 2) that was closed when the process started ``/dev/null``, and
    ``sys.stdout``/``sys.stderr`` a stream on it when Python left them ``None``.

    ``thumbnail-ingest ingest ... 2>&-`` then runs normally with its logs dropped. Without this the next file
    opened (the journal, the results) would take descriptor 2, and any write meant for stderr would land in it.
    """
    for fd, flags in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, flags)  # the lowest free descriptor: ``fd`` itself, as 0..fd-1 are open
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    for name, fd in (("stdout", 1), ("stderr", 2)):
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "w", encoding="utf-8", errors="replace", closefd=False))  # noqa: SIM115


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the subcommand, and return the exit code (``ExitCode``; never a traceback for a
    user error). Every message goes to stderr: one sentence each in console mode, JSON in json mode. A
    closed stderr (``2>&-``) drops the messages and changes nothing else."""
    _fill_closed_std_streams()
    args = list(sys.argv[1:] if argv is None else argv)
    out = _Out(_early_format(args, os.environ))
    logs.configure_logging("json" if out.json else "auto")
    try:
        ns = build_parser().parse_args(args)
        out = _Out(getattr(ns, "log_format", "auto"))
        return _dispatch(ns, out)
    except JournalBusyError as exc:
        out.error("journal_busy", str(exc), error_type=type(exc).__name__)
        return int(ExitCode.BUSY)
    except ConfigError as exc:
        out.error("config_error", str(exc), error_type=type(exc).__name__)
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        message = "interrupted; state saved, run the same command again to resume"
        if out.json:
            log.warning("interrupted", action=message)
        else:
            out.text(f"{PROG}: {message}")
        return int(ExitCode.INTERRUPTED)
    except IngestError as exc:
        out.error("run_error", str(exc), error_type=type(exc).__name__)
        return int(ExitCode.FAILED)
