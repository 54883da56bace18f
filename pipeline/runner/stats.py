"""``RunStats``: what a run without a progress bar says every ``--stats`` seconds, and its ``--metrics-file``.

A 16-hour run under cron has no bar: without these ``progress`` events nothing would be logged between
``run_started`` and ``run_finished`` but rejections, and the run would look hung. The counts come from the
``Progress`` counter the Recorder moves for every row (the bar's own numbers), the retries from the client.
Time is read from injected clocks and waited on an injected sleeper, so tests run in virtual time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog

from pipeline.errors import ConfigError
from pipeline.metrics import Counters, render, write_atomic

__all__ = ["RunStats", "check_metrics_target", "utc_text"]

log = structlog.get_logger("pipeline.runner")


def utc_text(unix_s: float) -> str:
    """``unix_s`` as an ISO 8601 UTC time to the second (``2025-01-31T04:05:06Z``)."""
    return datetime.fromtimestamp(unix_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_metrics_target(path: Path | None) -> None:
    """Refuse, before any upload, a ``--metrics-file`` whose folder does not exist or that names a folder."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"--metrics-file {path} is a folder; name a file (ending in .prom for node_exporter).")
    if not path.absolute().parent.is_dir():
        raise ConfigError(f"--metrics-file {path}: the folder {path.absolute().parent} does not exist.")


class RunStats:
    """Every ``interval`` seconds (of ``sleep``): a ``progress`` event when ``log_progress`` (no bar is drawn)
    and the ``metrics_file`` rewritten; ``finish`` writes the metrics file once more with the exit code.

    ``counts`` is the live per-status counter of rows done (``Progress.counts``); ``retries`` returns the
    client's retries so far, per kind. The task never keeps a run alive: ``stop`` cancels it, and a metrics
    file that cannot be written is a warning, never the run's failure.
    """

    def __init__(self, *, run_id: str, total: int, counts: Mapping[str, int],
                 retries: Callable[[], Mapping[str, int]], interval: float, log_progress: bool,
                 metrics_file: Path | None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.run_id, self.total, self.counts, self.retries = run_id, total, counts, retries
        self.interval, self.log_progress, self.metrics_file = interval, log_progress, metrics_file
        self.clock, self.wall, self.sleep = clock, wall, sleep
        self._t0, self._wall0 = clock(), wall()
        self._last_t, self._last_done = self._t0, 0
        self._task: asyncio.Task[None] | None = None
        self._metrics_failing = False

    def start(self) -> None:
        """Start ticking (in the running loop) when there is something to tick for."""
        if self.interval > 0 and (self.log_progress or self.metrics_file is not None) and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._ticks(), name="run-stats")

    def stop(self) -> None:
        """Stop ticking now (no wait: the task only sleeps or ticks synchronously)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _ticks(self) -> None:
        while True:
            await self.sleep(self.interval)
            self.tick()

    def counters(self, exit_code: int | None = None) -> Counters:
        """The counters now: rates over the last interval (since the previous tick) and the whole run, and the
        ETA at the recent rate (the run's rate while the last interval moved nothing)."""
        now = self.clock()
        done = sum(self.counts.values())
        span, run_span = now - self._last_t, now - self._t0
        rate_last = (done - self._last_done) / span if span > 0 else 0.0
        rate_run = done / run_span if run_span > 0 else 0.0
        remaining = max(self.total - done, 0)
        rate = rate_last or rate_run
        eta = 0.0 if remaining == 0 else (remaining / rate if rate > 0 else None)
        return Counters(run_id=self.run_id, total=self.total, done=done,
                        by_status={k: n for k, n in sorted(self.counts.items()) if n},
                        retries={k: n for k, n in sorted(self.retries().items()) if n},
                        rate_last=rate_last, rate_run=rate_run, eta_s=eta,
                        started_at=self._wall0, at=self._wall0 + run_span, exit_code=exit_code)

    def tick(self) -> Counters:
        """Take the counters, log them (when no bar shows them), write the metrics file, open a new interval."""
        c = self.counters()
        if self.log_progress:
            log.info("progress", done=c.done, total=c.total,
                     percent=round(100 * c.done / c.total, 1) if c.total else 100.0,
                     rows_per_s=round(c.rate_last, 2), rows_per_s_run=round(c.rate_run, 2),
                     eta_s=None if c.eta_s is None else round(c.eta_s),
                     eta=None if c.eta_s is None else utc_text(c.at + c.eta_s),
                     retries=sum(c.retries.values()), retries_by_kind=dict(c.retries),
                     by_status=dict(c.by_status), elapsed_s=round(c.at - c.started_at, 1))
        self._write(c)
        self._last_t, self._last_done = self.clock(), c.done
        return c

    def finish(self, exit_code: int) -> None:
        """Stop ticking and write the metrics file a last time, with the run's exit code."""
        self.stop()
        self._write(self.counters(exit_code))

    def _write(self, c: Counters) -> None:
        if self.metrics_file is None:
            return
        try:
            write_atomic(self.metrics_file, render(c))
        except OSError as exc:
            if not self._metrics_failing:  # once per failing streak, not once per tick
                log.warning("metrics_not_written", path=str(self.metrics_file), error=str(exc))
            self._metrics_failing = True
        else:
            self._metrics_failing = False

