"""``read_source``: one remote source read synchronously, for a process that has no event loop of its own (a
Ray worker).

It is the ``Fetcher`` itself (the same store building, credentials, size limit, timeout, retries and reason
codes), run on an event loop this thread keeps, with its connections and object stores reused from one call to
the next: a row read here gets exactly the outcome it would get from the driver's ``Fetcher``.
"""

from __future__ import annotations

import asyncio
import threading

from pipeline.fetch.fetcher import Fetcher
from pipeline.fetch.outcomes import Fetched, FetchRejected
from pipeline.fetch.refs import SourceRef
from pipeline.fetch.settings import FetchSettings

__all__ = ["close_reader", "read_source"]

_LOCAL = threading.local()


def _fetcher(settings: FetchSettings) -> tuple[asyncio.AbstractEventLoop, Fetcher]:
    """This thread's loop and its open ``Fetcher`` for ``settings`` (a new one when the settings change)."""
    kept: tuple[FetchSettings, asyncio.AbstractEventLoop, Fetcher] | None = getattr(_LOCAL, "kept", None)
    if kept is not None and kept[0] == settings:
        return kept[1], kept[2]
    close_reader()
    loop = asyncio.new_event_loop()
    fetcher = Fetcher(settings)
    # A worker sees only its own share of the run's rows, so it must never judge the whole run: with a local
    # "store" that can never close, a store refusing everything has its rows rejected here, one by one
    # (the driver's Fetcher, which saw every store, is the one that may stop the run).
    fetcher.saw(None)
    loop.run_until_complete(fetcher.__aenter__())
    _LOCAL.kept = (settings, loop, fetcher)
    return loop, fetcher


def read_source(ref: SourceRef, settings: FetchSettings) -> Fetched | FetchRejected:
    """The bytes and stamp of the remote source ``ref`` (``s3://``, ``gs://``, ``http(s)://``), or why not,
    under ``settings``' bounds and with the ``Fetcher``'s reasons (``not_found``, ``source_too_large``,
    ``access_denied``, ``fetch_failed``, ...). Never raises for a per-source problem; the bytes are not held in
    any budget (the caller owns them)."""
    loop, fetcher = _fetcher(settings)
    return loop.run_until_complete(fetcher.fetch(ref))


def close_reader() -> None:
    """Close this thread's ``Fetcher`` and loop (its connections), if it has one; the next read opens anew. A
    worker process keeps them for its life; tests and short-lived threads close them."""
    kept: tuple[FetchSettings, asyncio.AbstractEventLoop, Fetcher] | None = getattr(_LOCAL, "kept", None)
    _LOCAL.kept = None
    if kept is not None:
        kept[1].run_until_complete(kept[2].__aexit__(None, None, None))
        kept[1].close()
