"""``RunControl``: the one place that knows whether a run goes on, and if not, why.

States: ``running`` -> ``stopping`` (Ctrl-C once, a kernel interrupt, a fatal API answer, a local write
failure, ``--limit`` reached) -> ``abandoned`` (a second signal: rows in flight are given up and redone next
run). Only this object changes the state. A stop runs the ``on_stop`` callbacks once: the session cuts the
pipes between the stages (``Pipe.cut``), so every stage's wait on its inbox ends and no new row is taken, with
no stage polling the state. A signal also runs the ``on_interrupt`` callbacks once, so that waits under way end
by cancellation: the client cuts every wait of a row holding no key and gives rows holding one ``--stop-grace``
seconds; the fetch and image stages cancel their tasks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import Enum

import structlog

from pipeline.errors import FatalApiError, LocalWriteError, ManifestError

__all__ = ["RunControl", "StopCause"]

log = structlog.get_logger("pipeline.runner")


class StopCause(str, Enum):
    """Why a run stopped before reading every row; decides the reason given to rows not finished."""

    INTERRUPTED = "interrupted"
    FATAL = "fatal"
    LOCAL = "local"
    LIMIT = "limit"


class RunControl:
    """Stop, interrupt and fatal state of one run. Use from the event loop's thread (``request_stop_threadsafe``
    from any other)."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.cause: StopCause | None = None
        self.fatal: FatalApiError | None = None
        self.local_error: LocalWriteError | None = None
        self.input_error: ManifestError | None = None
        self.abandoned = False
        self.signals = 0
        self.writing_results = False
        self._on_interrupt: list[Callable[[], None]] = []
        self._on_stop: list[Callable[[], None]] = []
        self._main = asyncio.current_task()
        self._loop = asyncio.get_running_loop()

    @property
    def interrupted(self) -> bool:
        """Whether a signal or an interrupt stopped the run."""
        return self.cause is StopCause.INTERRUPTED

    def on_interrupt(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from the loop's thread) once, at the first signal or interrupt; at once when one
        came already. Returns the function that takes the callback back (a stage that ended)."""
        if self.signals:
            callback()
        else:
            self._on_interrupt.append(callback)

        def forget() -> None:
            if callback in self._on_interrupt:
                self._on_interrupt.remove(callback)

        return forget

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the loop's thread) once, when the run stops for any cause; at once when it has
        stopped already."""
        if self.stopping.is_set():
            callback()
        else:
            self._on_stop.append(callback)

    def stop(self, cause: StopCause) -> None:
        """Stop taking new rows; the first cause is kept (a fatal answer after Ctrl-C stays an interrupt)."""
        if self.cause is None:
            self.cause = cause
        self._stopped()

    def _stopped(self) -> None:
        """The run takes no new row: the ``on_stop`` callbacks, once."""
        self.stopping.set()
        callbacks, self._on_stop = self._on_stop, []
        for callback in callbacks:
            callback()

    def fail(self, exc: FatalApiError) -> None:
        """A fatal API answer: stop, and remember the first one (logged once, here)."""
        if self.fatal is None:
            self.fatal = exc
            log.error("fatal_api_error", error=str(exc), error_type=type(exc).__name__, status=exc.status,
                      code=exc.code)  # the one event for the whole run (the client logs its stop at debug)
        self.stop(StopCause.FATAL)

    def fail_local(self, exc: LocalWriteError) -> None:
        """The journal or the results could not be written: stop cleanly with the state kept so far."""
        if self.local_error is None:
            self.local_error = exc
            log.error("local_write_failed", error=str(exc))
        self.stop(StopCause.LOCAL)

    def fail_input(self, exc: ManifestError) -> None:
        """The manifest could not be read to its end (rewritten or damaged while the run read it): stop; the
        rows read so far keep their state and are written to the results."""
        if self.input_error is None:
            self.input_error = exc
            log.error("manifest_error", error=str(exc))
        self.stop(StopCause.LOCAL)

    def on_signal(self) -> None:
        """SIGINT/SIGTERM: the first stops taking rows and ends every wait of a row that holds no key (the
        ``on_interrupt`` callbacks); uploads holding a key finish within ``--stop-grace``, then results are
        written. The second abandons the rows in flight (they are redone on the next run) and leaves the
        previous results file as it was."""
        self.signals += 1
        if self.signals > 1:
            self.abandon()
            return
        if self.cause in (None, StopCause.LIMIT):
            self.cause = StopCause.INTERRUPTED  # a fatal answer or a full disk stays the cause it is
        self._stopped()
        action = ("finishing the results file" if self.writing_results else
                  "finishing uploads under way, then writing results (Ctrl-C again to abandon them)")
        log.warning("interrupted", action=action)
        callbacks, self._on_interrupt = self._on_interrupt, []
        for callback in callbacks:
            callback()

    def abandon(self) -> None:
        """Give up the rows in flight now (they stay ``presigned`` and are redone next run)."""
        if self.abandoned:
            return
        self.abandoned = True
        log.warning("interrupt_again", action="abandoning rows in flight; they are redone on the next run")
        if self._main is not None and not self._main.done():
            self._main.cancel()

    def request_stop_threadsafe(self, *, abandon: bool = False) -> None:
        """From another thread (a notebook's kernel interrupt): like one signal, or two with ``abandon``."""
        self._loop.call_soon_threadsafe(self.abandon if abandon else self.on_signal)
