"""structlog configuration (once, at the entry point) and redaction of secrets.

Console output on a terminal, JSON lines with ``--log-format json`` (cron). Every event passes through
``redact``: registered secrets are replaced and URL query strings (presigned URLs are bearer credentials)
are cut, whatever field they hide in.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable, MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["add_secret", "configure_logging", "redact", "redact_text", "set_line_sink"]

_QUERY = re.compile(r"(?P<base>\bhttps?://[^\s?#'\"<>]+)\?[^\s'\"<>]*")
_AMZ = re.compile(r"(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s'\"<>]+", re.IGNORECASE)
_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_sink: Callable[[str], None] | None = None


def add_secret(value: str) -> None:
    """Register a value (a secret key) that must never appear in any log line."""
    if value and len(value) >= 4:
        with _LOCK:
            _SECRETS.add(value)


def redact_text(text: str) -> str:
    """``text`` with registered secrets and URL query strings replaced by ``<redacted>``."""
    if "?" in text or "X-Amz" in text or "x-amz" in text:
        text = _QUERY.sub(r"\g<base>?<redacted>", text)
        text = _AMZ.sub(r"\1<redacted>", text)
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "<redacted>")
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub(v) for v in value)
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value


def redact(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: scrub every field of the event (strings, nested containers, exceptions)."""
    for key in list(event_dict):
        event_dict[key] = _scrub(event_dict[key])
    return event_dict


def set_line_sink(sink: Callable[[str], None] | None) -> None:
    """Send rendered log lines to ``sink`` (e.g. ``tqdm.write`` while a progress bar is shown)."""
    global _sink
    _sink = sink


class _SinkFile:
    """A file-like object that routes lines to the active sink (a progress bar) or to the stream."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        # Looked up per write when not fixed: sys.stderr may be swapped (pytest capture, notebooks).
        return self._stream if self._stream is not None else sys.stderr

    def write(self, text: str) -> int:
        sink = _sink
        if sink is None:
            self.stream.write(text)
        elif text.strip():  # print() sends the newline separately; the sink adds its own
            sink(text.rstrip("\n"))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def configure_logging(fmt: str = "auto", *, stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Configure structlog for the whole process.

    ``fmt``: ``json`` (one JSON object per line), ``console`` (human, colours on a terminal) or ``auto``
    (console). Idempotent: the last call wins.
    """
    out = stream if stream is not None else sys.stderr
    is_tty = bool(getattr(out, "isatty", lambda: False)())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=is_tty, exception_formatter=structlog.dev.plain_traceback)
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=_SinkFile(stream)),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
