"""The run's counters for Prometheus: the text exposition format that node_exporter's textfile collector reads
(``--metrics-file``), written atomically so a scrape never sees half a file.

No dependency: the format is a few lines of text (``# HELP``, ``# TYPE``, then ``name{label="value"} number``).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PREFIX", "Counters", "render", "write_atomic"]

PREFIX = "thumbnail_ingest"


@dataclass(frozen=True, slots=True)
class Counters:
    """The run's counters at one moment (a ``--stats`` tick or the end)."""

    run_id: str
    total: int
    """Rows in the input."""
    done: int
    """Rows this run has passed through (each counted once, whatever its status)."""
    by_status: Mapping[str, int]
    """``done`` per status (``finished`` = left alone: done by an earlier run)."""
    retries: Mapping[str, int]
    """API calls retried so far, per kind (``transient``, ``rate_limited``, ...)."""
    rate_last: float
    """Rows per second over the last interval."""
    rate_run: float
    """Rows per second since the run started."""
    eta_s: float | None
    """Seconds until every row is done at the recent rate; ``None`` while nothing moves."""
    started_at: float
    """The run's start, Unix seconds."""
    at: float
    """When these counters were taken, Unix seconds."""
    exit_code: int | None = None
    """Set at the end only."""


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(round(value, 3))


def _label(value: str) -> str:
    """A label value escaped as the format requires (backslash, double quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(lines: list[str], name: str, kind: str, help_text: str,
            samples: list[tuple[dict[str, str], float]]) -> None:
    full = f"{PREFIX}_{name}"
    lines.append(f"# HELP {full} {help_text}")
    lines.append(f"# TYPE {full} {kind}")
    for labels, value in samples:
        text = ",".join(f'{key}="{_label(v)}"' for key, v in labels.items())
        lines.append(f"{full}{{{text}}} {_number(value)}" if text else f"{full} {_number(value)}")


def render(c: Counters) -> str:
    """The counters in Prometheus' text exposition format (version 0.0.4), ending in a newline."""
    lines: list[str] = []
    _family(lines, "run_info", "gauge", "The run these counters belong to.", [({"run_id": c.run_id}, 1)])
    _family(lines, "rows", "gauge", "Rows in the input.", [({}, c.total)])
    _family(lines, "rows_done", "gauge", "Rows this run has passed through, by status (finished = left alone).",
            [({"status": status}, n) for status, n in sorted(c.by_status.items())] or [({"status": "uploaded"}, 0)])
    _family(lines, "rows_per_second", "gauge", "Rows per second over the last interval and over the whole run.",
            [({"window": "last"}, c.rate_last), ({"window": "run"}, c.rate_run)])
    if c.eta_s is not None:
        _family(lines, "eta_seconds", "gauge", "Seconds until every row is done at the recent rate.",
                [({}, c.eta_s)])
    _family(lines, "retries_total", "counter", "API calls retried by this run, by kind.",
            [({"kind": kind}, n) for kind, n in sorted(c.retries.items())] or [({"kind": "transient"}, 0)])
    _family(lines, "start_time_seconds", "gauge", "When the run started, Unix seconds.", [({}, c.started_at)])
    _family(lines, "last_tick_time_seconds", "gauge", "When these counters were written, Unix seconds.",
            [({}, c.at)])
    if c.exit_code is not None:
        _family(lines, "exit_code", "gauge", "The run's exit code (written at its end).", [({}, c.exit_code)])
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same folder and a rename: a reader sees the old
    file or the new one, never a part. The temp name starts with a dot and does not end in ``.prom``, so the
    textfile collector never reads it. Raises ``OSError`` when the folder refuses the write."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        tmp.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
