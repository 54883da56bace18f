"""structlog configuration (once, at the entry point): where lines go, what they look like, what they hide.

- Every line goes to stderr (or the stream given), never stdout; while a progress bar is shown, lines go
  through the bar's ``write`` (``set_line_sink``) so they print above it, still on stderr.
- ``console``: one readable line per event, colours only when the stream is a terminal and ``NO_COLOR`` is
  unset. ``json``: one JSON object per line.
- A ``Redactor`` (pipeline.redaction) holding the run's secrets scrubs every field of every event.
- ``RetryDigest`` turns the client's per-call ``retrying``/``rate_limited`` events into DEBUG lines and one
  periodic summary (``retries_summary``), so a faulty server does not bury the events a person acts on.
- Events the caller says itself at the end (``held``: the CLI's one sentence of a stopped run, in console mode)
  are DEBUG lines, so a person reads that sentence once, not twice.
- A stream that breaks (the reader of ``2>&1 | head`` went away, a dead log shipper) is dropped silently:
  logging never stops a run.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from pipeline.redaction import Redactor

__all__ = [
    "STDERR",
    "STOP_EVENTS",
    "RetryDigest",
    "SafeStream",
    "configure_logging",
    "debugging",
    "flush_retry_summary",
    "level_number",
    "set_line_sink",
    "use_colors",
]

RETRY_EVENTS = frozenset({"retrying", "rate_limited"})
"""The client's per-call retry events: DEBUG lines, summarised by ``RetryDigest`` at the default level."""

STOP_EVENTS = frozenset({"fatal_api_error", "local_write_failed", "manifest_error"})
"""The events of a run stopping on one cause, whose sentence the CLI's console summary puts first."""


class SafeStream:
    """A text stream whose failures are swallowed: after the first ``OSError``/``ValueError`` (a closed pipe,
    a closed file), or when there is no stream at all (``sys.stderr`` is ``None``: the process started with
    descriptor 2 closed), every later write is dropped, so a reader that went away can never stop the run.

    With no ``stream``, writes go to the ``sys.stderr`` of the moment (so a caller may swap it).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self.broken = False
        self._lock = threading.Lock()

    @property
    def stream(self) -> TextIO:
        """The stream written to."""
        return self._stream if self._stream is not None else sys.stderr

    def write(self, text: str) -> int:
        """Write ``text`` (and flush at a newline); never raises."""
        if self.broken:
            return len(text)
        with self._lock:
            try:
                self.stream.write(text)
                if "\n" in text:
                    self.stream.flush()
            except (OSError, ValueError, AttributeError):  # AttributeError: sys.stderr is None (fd 2 closed)
                self.broken = True
        return len(text)

    def flush(self) -> None:
        """Flush; never raises."""
        if self.broken:
            return
        try:
            self.stream.flush()
        except (OSError, ValueError, AttributeError):
            self.broken = True

    def isatty(self) -> bool:
        """Whether the stream is a terminal (False once broken)."""
        if self.broken:
            return False
        try:
            return bool(self.stream.isatty())
        except (OSError, ValueError, AttributeError):
            return False

    def fileno(self) -> int:
        """The stream's descriptor (tqdm asks for it to size the bar)."""
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        """The stream's encoding (tqdm checks it to choose its bar characters)."""
        return str(getattr(self.stream, "encoding", None) or "utf-8")


STDERR = SafeStream()
"""The process's stderr, shared by the logger, the progress bar and the CLI's own lines: once broken, all
of them stop writing to it."""

_sink: Callable[[str], None] | None = None
_digest: RetryDigest | None = None


def set_line_sink(sink: Callable[[str], None] | None) -> None:
    """Send rendered log lines to ``sink`` (a progress bar's ``write``) instead of the stream; ``None``
    gives them back to the stream. A sink that raises is dropped and the line goes to the stream."""
    global _sink
    _sink = sink


class _LineFile:
    """The file structlog's PrintLogger writes to: routes lines to the active sink or to a SafeStream."""

    def __init__(self, out: SafeStream) -> None:
        self.out = out

    def write(self, text: str) -> int:
        sink = _sink
        if sink is not None and text.strip():  # print() sends the newline separately; the sink adds its own
            try:
                sink(text.rstrip("\n"))
                return len(text)
            except (OSError, ValueError):
                set_line_sink(None)
        if sink is None or text.strip():
            self.out.write(text)
        return len(text)

    def flush(self) -> None:
        self.out.flush()


def use_colors(stream: Any, env: Mapping[str, str] | None = None) -> bool:
    """Colours only on a terminal, and never when ``NO_COLOR`` is set to anything (https://no-color.org)."""
    env = os.environ if env is None else env
    if env.get("NO_COLOR"):
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def level_number(name: str | int) -> int:
    """``"debug"``/``"INFO"``/``"warning"``/``"error"``/``"critical"`` (or a number) as a logging level;
    ``ValueError`` naming the choices otherwise."""
    if isinstance(name, int):
        return name
    value = logging.getLevelName(name.strip().upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {name!r}; use debug, info, warning or error")
    return value


def _label(event: MutableMapping[str, Any]) -> str:
    """What a retry was for: the HTTP status, else the client's ``kind``/``reason``, else timeout/no answer."""
    if event.get("event") == "rate_limited":
        return "429"
    status = event.get("status")
    if status is not None:
        return str(status)
    for key in ("kind", "reason"):
        if event.get(key):
            return str(event[key])
    error = str(event.get("error", "")).lower()
    return "timeout" if "timeout" in error or "timed out" in error else "no answer"


class RetryDigest:
    """A structlog processor that turns per-call retry events into one summary line per ``interval``.

    Each ``retrying``/``rate_limited`` event is counted by what it was for (status, kind) and becomes a
    DEBUG line (dropped unless ``level`` is DEBUG). At INFO or below, the first retry event at least
    ``interval`` seconds (on ``clock``) after the window opened is replaced by a ``retries_summary`` INFO
    event: "retried 37 calls in the last 10 s (502 x 30, timeout x 7)". ``flush`` emits what is left.
    """

    def __init__(self, *, level: int = logging.INFO, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.level = level
        self.interval = interval
        self.clock = clock
        self._counts: Counter[str] = Counter()
        self._opened: float | None = None
        self._lock = threading.Lock()

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """structlog processor: pass other events through; count, demote, and summarise retry events."""
        if event.get("event") not in RETRY_EVENTS:
            return event
        with self._lock:
            now = self.clock()
            if self._opened is None:
                self._opened = now
            self._counts[_label(event)] += 1
            due = now - self._opened >= self.interval
            summary = self._take(now) if due and self.level > logging.DEBUG else None
        if self.level <= logging.DEBUG:
            event["level"] = "debug"
            return event
        if summary is None or self.level > logging.INFO:
            raise structlog.DropEvent
        return {"timestamp": event.get("timestamp"), "level": "info", "event": "retries_summary", **summary}

    def _take(self, now: float) -> dict[str, Any] | None:
        if not self._counts or self._opened is None:
            return None
        total = sum(self._counts.values())
        span = max(now - self._opened, 0.0)
        kinds = ", ".join(f"{kind} x {n}" for kind, n in self._counts.most_common())
        summary = {"summary": f"retried {total} calls in the last {span:.0f} s ({kinds})", "retried": total,
                   "window_s": round(span, 1), "by_kind": dict(self._counts)}
        self._counts.clear()
        self._opened = None
        return summary

    def flush(self) -> dict[str, Any] | None:
        """Take the summary of the retries counted since the last one (``None`` if there were none)."""
        with self._lock:
            return self._take(self.clock())


class _Held:
    """A structlog processor: the ``events`` named become DEBUG lines (dropped above DEBUG) because the caller
    says them itself."""

    def __init__(self, events: Iterable[str], level: int) -> None:
        self.events = frozenset(events)
        self.level = level

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if event.get("event") not in self.events:
            return event
        if self.level > logging.DEBUG:
            raise structlog.DropEvent
        event["level"] = "debug"
        return event


def flush_retry_summary() -> None:
    """Log the summary of retries not yet summarised (call at the end of a run); nothing if none."""
    digest = _digest
    if digest is None or digest.level > logging.INFO:
        return
    summary = digest.flush()
    if summary is not None:
        structlog.get_logger("pipeline.client").info("retries_summary", **summary)


def debugging() -> bool:
    """Whether the configured level shows DEBUG lines (``-v``): then other libraries' console output (Ray's)
    may reach the terminal too."""
    return _digest is not None and _digest.level <= logging.DEBUG


def configure_logging(
    fmt: str = "auto",
    *,
    stream: TextIO | None = None,
    level: int | str = logging.INFO,
    secrets: Iterable[str] = (),
    clock: Callable[[], float] = time.monotonic,
    retry_interval: float = 10.0,
    env: Mapping[str, str] | None = None,
    held: Iterable[str] = (),
) -> None:
    """Configure structlog for the whole process; the last call wins.

    ``fmt``: ``json`` (one JSON object per line), ``console`` or ``auto`` (console). Lines go to ``stream``
    (default: stderr) through a ``SafeStream``; ``level`` filters by meaning (the same in both formats);
    ``secrets`` are redacted from every field of every event, as are signatures and URL query strings.
    Retry events are summarised every ``retry_interval`` seconds of ``clock`` (see ``RetryDigest``). Events
    named in ``held`` (e.g. ``STOP_EVENTS``) are shown at DEBUG only: the caller says them itself.
    """
    global _digest
    out = STDERR if stream is None else SafeStream(stream)
    threshold = level_number(level)
    digest = _digest = RetryDigest(level=threshold, interval=retry_interval, clock=clock)
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=use_colors(out.stream, env), sort_keys=False,
            exception_formatter=structlog.dev.plain_traceback)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            digest,
            _Held(held, threshold),
            structlog.processors.format_exc_info,
            Redactor(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=_LineFile(out)),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
