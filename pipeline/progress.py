"""Progress display (tqdm on a terminal or in a notebook, nothing otherwise) and the end-of-run table."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any, TextIO

from pipeline import logs
from pipeline.models import Summary

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


class Progress:
    """Rows done/total, rows/s, ETA and counts per status. A no-op when disabled or not on a terminal."""

    def __init__(self, total: int, *, enabled: bool, stream: TextIO | None = None, initial: int = 0) -> None:
        self.counts: Counter[str] = Counter()
        self._bar: Any = None
        out = stream if stream is not None else sys.stderr
        notebook = in_notebook()
        if not enabled or not (notebook or bool(getattr(out, "isatty", lambda: False)())):
            return
        import tqdm
        import tqdm.auto

        factory: Any = tqdm.auto.tqdm if notebook else tqdm.tqdm
        self._bar = factory(
            total=total, initial=initial, unit="row", file=out, dynamic_ncols=True, smoothing=0.05,
            desc="ingest",
        )
        logs.set_line_sink(self._bar.write)

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


def render_summary(summary: Summary) -> str:
    """A short human table: per status, per reason, throughput, and where the results and journal are."""
    lines = [f"{'rows':<22}{summary.total:>10}"]
    for status, n in sorted(summary.by_status.items()):
        lines.append(f"  {status:<20}{n:>10}")
    if summary.by_reason:
        lines.append("reasons")
        for reason, n in sorted(summary.by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {reason:<20}{n:>10}")
    retries = {kind: n for kind, n in summary.retries.items() if n}
    if retries:
        lines.append("retries")
        for kind, n in sorted(retries.items()):
            lines.append(f"  {kind:<20}{n:>10}")
    lines.append(f"{'duration':<22}{summary.duration_s:>9.1f}s")
    lines.append(f"{'throughput':<22}{summary.rows_per_s:>8.1f}/s")
    if summary.results_path is not None:
        lines.append(f"results   {summary.results_path}")
    if summary.journal_path is not None:
        lines.append(f"journal   {summary.journal_path}")
    if summary.interrupted:
        lines.append("interrupted: state saved; run the same command again to resume")
    return "\n".join(lines)
