"""The one clock and the one timestamp format of everything the journal and the results write.

``now_text()`` is the current UTC time as ISO 8601 with milliseconds and ``Z`` (``2026-11-29T07:56:48.195Z``);
``read_time`` reads that form and every other ISO 8601 form older journals hold (``+00:00``, none: UTC).
``utc_now`` is the seam: tests replace it (``monkeypatch.setattr(clock, "utc_now", ...)``) to set the time
every writer stamps.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

__all__ = ["now_text", "read_time", "time_text", "utc_now"]


def _system_now() -> datetime:
    return datetime.now(timezone.utc)


utc_now: Callable[[], datetime] = _system_now
"""The current time, aware and in UTC; replaceable (looked up at every call)."""


def time_text(moment: datetime) -> str:
    """``moment`` (aware; a naive one is taken as UTC) as the journal and the results write it: UTC, ISO 8601,
    milliseconds, ``Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_text() -> str:
    """The current UTC time (``utc_now``) as the journal and the results write it (``time_text``)."""
    return time_text(utc_now())


def read_time(text: str) -> datetime:
    """A written timestamp as an aware UTC ``datetime``: ``Z``, ``+00:00`` or another offset, or none (UTC).
    Raises ``ValueError`` for text that is not ISO 8601."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
