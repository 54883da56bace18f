"""The progress bar (on stderr when it is a terminal, a widget in a notebook, nothing otherwise) and the
end-of-run summary text."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from typing import Any, TextIO

from pipeline import logs
from pipeline.models import ExitCode
from pipeline.summary import Summary

__all__ = ["Progress", "in_notebook", "render_summary"]


def in_notebook() -> bool:
    """Whether we run inside a Jupyter kernel (then tqdm.auto draws a widget)."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _widgets_available() -> bool:
    # Without ipywidgets, tqdm.auto falls back to text and warns (TqdmWarning) on import: we choose first.
    return importlib.util.find_spec("ipywidgets") is not None


class Progress:
    """Rows done/total, rows/s, ETA and counts per status. A no-op when disabled or when neither a
    terminal nor a notebook would show it.

    The bar is drawn on ``stream`` (default: stderr), never on stdout; while it is shown, log lines print
    above it on the same stream. A broken stream turns the bar off instead of failing the run.
    """

    def __init__(self, total: int, *, enabled: bool, stream: TextIO | None = None, initial: int = 0) -> None:
        self.counts: Counter[str] = Counter()
        self._bar: Any = None
        out = logs.STDERR if stream is None else logs.SafeStream(stream)
        self._out = out
        notebook = in_notebook()
        if not enabled or not (notebook or out.isatty()):
            return
        kwargs: dict[str, Any] = {"total": total, "initial": initial, "unit": "row", "desc": "ingest"}
        if notebook and _widgets_available():
            import tqdm.auto

            self._bar = tqdm.auto.tqdm(**kwargs)
        else:
            import tqdm

            self._bar = tqdm.tqdm(file=out, dynamic_ncols=True, smoothing=0.05, **kwargs)
        logs.set_line_sink(self._write_line)

    @property
    def drawn(self) -> bool:
        """Whether a bar is shown (else nothing shows the run's progress unless ``--stats`` logs it)."""
        return self._bar is not None

    def _write_line(self, line: str) -> None:
        import tqdm

        # tqdm.write defaults to stdout: name the bar's stream so log lines stay on stderr.
        tqdm.tqdm.write(line, file=self._out)

    def update(self, status: str, n: int = 1) -> None:
        """Count ``n`` rows that ended in ``status``."""
        self.counts[status] += n
        if self._bar is not None:
            self._bar.update(n)
            self._bar.set_postfix(dict(sorted(self.counts.items())), refresh=False)

    def close(self) -> None:
        """Remove the bar and give log lines back to the stream."""
        if self._bar is not None:
            logs.set_line_sink(None)
            self._bar.close()
            self._bar = None


_PLAN_LABELS = (
    ("new", "new rows to upload"),
    ("changed", "changed sources to upload again"),
    ("person_changed", "rows whose person changed: new key"),
    ("recheck", "rejections to check again"),
    ("retry", "failed rows to retry"),
    ("redo_in_flight", "rows in flight when stopped, to redo"),
    ("finished", "finished rows left alone"),
    ("attach", "uploaded rows to attach (no upload)"),
    ("expired", "unattached keys too old: upload again"),
    ("person_full", "rows past --person-max (rejected)"),
    ("person_not_found", "rows of unknown person ids (failed)"),
    ("invalid_person", "rows whose person name the API refuses"),
    ("rejected", "rows rejected (never uploaded)"),
)
_ATTACH_LABELS = (
    ("persons_created", "persons created"),
    ("persons_extended", "persons extended"),
    ("thumbnails_attached", "thumbnails attached"),
    ("thumbnails_superseded", "attached again (earlier ones stay)"),
    ("persons_to_create", "persons to create"),
    ("persons_to_extend", "persons to extend"),
    ("thumbnails_to_attach", "thumbnails to attach"),
    ("person_full", "rows person_full"),
    ("person_not_found", "rows person_not_found"),
    ("invalid_person", "rows invalid_person"),
    ("names_not_looked_up", "names not looked up (create or extend?)"),
)


def _count(n: int) -> str:
    return f"{n:>10,}"


def _done(summary: Summary) -> str:
    # "unchanged" rows were only looked up in the journal: they are not work done by this run.
    done = sum(n for status, n in summary.this_run.items() if status != "unchanged")
    return f"this run: {done:,} rows in {summary.duration_s:.1f} s ({summary.rows_per_s:.1f} rows/s)"


def _where(summary: Summary, dry: bool) -> list[str]:
    """The files the run wrote (a results file a second Ctrl-C left unwritten has no path), the journal (a dry
    run only read it), the run id and the warnings."""
    lines = []
    if summary.results_path is not None:
        lines.append(f"results   {summary.results_path}")
    if summary.journal_path is not None:
        lines.append(f"journal   {summary.journal_path}" + (" (read, not changed)" if dry else ""))
    if summary.run_id is not None:
        lines.append(f"run id    {summary.run_id}")
    lines.extend(f"warning: {w}" for w in summary.warnings)
    return lines


def _stopped(summary: Summary, dry: bool) -> str:
    """A stopped run: its one sentence first (what cron mail shows and grep finds), then only what was kept."""
    states = ", ".join(f"{n:,} {status}" for status, n in sorted(summary.by_status.items()))
    lines = [f"thumbnail-ingest: stopped: {summary.error}",
             f"rows      {summary.total:,}" + (f": {states}" if states else ""), _done(summary)]
    lines.extend(_where(summary, dry))
    return "\n".join(lines)


def render_summary(summary: Summary, *, dry_run: bool = False) -> str:
    """A short human summary: each status over the whole manifest with how many this run finished, the
    reasons, this run's duration and rows/s, what to do next, and where the results and journal are. For a
    dry run (``dry_run`` or a ``skipped`` status) the plan is shown as what a real run would do now. A run
    stopped by an error (``summary.error``) starts with that one sentence and shows only the counts and files."""
    if summary.error:
        return _stopped(summary, dry_run)
    lines = [*_statuses(summary), *_plan(summary, dry_run), *_persons(summary), *_retries(summary)]
    lines.append(_done(summary))
    lines.extend(_where(summary, dry_run))  # only a run said to be dry: --dedupe runs leave rows skipped too
    failed = summary.by_status.get("failed", 0)
    if summary.interrupted:
        lines.append("interrupted: state saved; run the same command again to resume")
    elif summary.exit_code == ExitCode.FAILED and failed:
        lines.append(f"{failed:,} rows failed; run the same command again to retry them")
    return "\n".join(lines)


def _statuses(summary: Summary) -> list[str]:
    """Each status over the whole manifest with this run's share, then the reasons, most frequent first."""
    lines = [f"{'rows':<24}{_count(summary.total)}"]
    for status, n in sorted(summary.by_status.items()):
        lines.append(f"  {status:<22}{_count(n)}   ({summary.this_run.get(status, 0):,} this run)")
    if summary.by_reason:
        lines.append("reasons")
        for reason, n in sorted(summary.by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {reason:<22}{_count(n)}")
    return lines


def _plan(summary: Summary, dry_run: bool) -> list[str]:
    """What the run found to do (a dry run: what a real run would do now)."""
    lines: list[str] = []
    planned = {k: n for k, n in summary.planned.items() if n}
    if planned:
        dry = dry_run or "skipped" in summary.by_status
        lines.append("what a real run would do now" if dry else "this run found")
        lines.extend(f"  {label:<36}{planned[key]:>8,}" for key, label in _PLAN_LABELS if planned.get(key))
    return lines


def _retries(summary: Summary) -> list[str]:
    """The retries the run made, per kind."""
    retries = {kind: n for kind, n in summary.retries.items() if n}
    if not retries:
        return []
    return ["retries", *(f"  {kind:<22}{_count(n)}" for kind, n in sorted(retries.items()))]


def _persons(summary: Summary) -> list[str]:
    """The persons' counts (``--attach``) and the journal's rows this input no longer names."""
    lines: list[str] = []
    if summary.attach:
        lines.append("persons")
        lines.extend(f"  {label:<36}{summary.attach[key]:>8,}" for key, label in _ATTACH_LABELS
                     if key in summary.attach)
    if summary.not_in_manifest:
        gone = ", ".join(f"{n:,} {status}" for status, n in sorted(summary.not_in_manifest.items()))
        lines.append(f"not in this input: {gone} (rows of earlier runs; their thumbnails stay with their persons)")
    return lines
