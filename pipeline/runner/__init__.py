"""The asyncio orchestration of one run; ``session`` draws the whole, ``stages`` the parts.

``run_async`` checks everything that can be checked before any upload (manifest, results and journal
locations, journal ownership, the endpoint), runs the stages, and always writes the results from the rows read
in this run and the journal (the source of truth): on success, on interrupt, on a fatal API answer alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pipeline.config import Settings
from pipeline.runner.control import RunControl
from pipeline.runner.paths import RunPaths, run_paths
from pipeline.runner.session import RunSession
from pipeline.summary import Summary

__all__ = ["RunControl", "RunPaths", "RunSession", "run", "run_async", "run_paths"]


async def run_async(
    settings: Settings, source: Any, *, handle_signals: bool = False, collect_results: bool = False,
    on_control: Callable[[RunControl], None] | None = None,
) -> Summary:
    """Run one ingest of ``source`` (a manifest path, a pyarrow Table or a pandas DataFrame).

    Raises ``ConfigError``/``ManifestError``/``JournalMismatchError`` before any upload when the input or the
    settings are unusable. Otherwise returns a ``Summary`` whose ``exit_code`` follows the CLI contract;
    ``on_control`` receives the run's ``RunControl`` as soon as it exists (to stop it from elsewhere).
    """
    session = RunSession(settings, source, handle_signals=handle_signals, collect_results=collect_results,
                         on_control=on_control)
    return await session.run()


def run(settings: Settings, source: Any, *, handle_signals: bool = False, collect_results: bool = False) -> Summary:
    """Synchronous ``run_async`` in a fresh event loop."""
    return asyncio.run(run_async(settings, source, handle_signals=handle_signals, collect_results=collect_results))
