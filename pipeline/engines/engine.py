"""Where fetch and prepare run: the ``Engine`` protocol (planned jobs in, prepared or rejected rows out, at most
``slots`` at once), the local pool (``LocalEngine``) and the choice of one for a run (``open_engine``).

The stages know only the protocol: ``PrepareStage`` hands each job's ``Task`` to ``Engine.work`` and awaits its
``Outcome``; ``FetchStage`` fetches remote sources on the driver unless the engine says it reads them itself
(``Engine.fetches``). Everything stateful (plan, journal, limiters, uploads, results) stays with the driver
whatever the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Protocol

from pipeline.config import Settings
from pipeline.engines.work import Outcome, Task, work
from pipeline.models import Prepared

__all__ = ["Admit", "Engine", "LocalEngine", "open_engine"]

Admit = Callable[[int], Awaitable[None]]
"""Called by an engine with a prepared image's length before its bytes are the driver's to hold: it returns once
the prepared-bytes budget has room for them (and holds it)."""


class Engine(Protocol):
    """Runs ``work`` for the stages. ``slots``: how many jobs the prepare stage keeps in flight (the engine's
    CPUs, about twice over, so none idles while the driver hands on results). ``fetches``: the engine reads
    remote sources itself (the fetch stage then passes them on unread). ``work`` never returns before the task is
    done and raises only for a run-level failure (a per-row problem is in the ``Outcome``); cancelling it
    abandons the task. When the outcome carries prepared bytes (``Task.keep_data``), ``work`` awaits
    ``admit(len(data))`` before it returns them, and before they reach the driver when they live elsewhere.
    ``close`` ends whatever the engine started (idempotent)."""

    slots: int
    fetches: bool

    async def work(self, task: Task, admit: Admit) -> Outcome: ...

    def close(self) -> None: ...


class LocalEngine:
    """Today's engine: ``work`` in this machine's thread or process pool (``--workers``, ``--processes``);
    remote sources are fetched on the driver by the fetch stage first."""

    fetches = False

    def __init__(self, pool: Executor, slots: int) -> None:
        self.pool, self.slots = pool, slots

    async def work(self, task: Task, admit: Admit) -> Outcome:
        """``work(task)`` in the pool; its prepared bytes are in this process already, and admitted after."""
        outcome: Outcome = await asyncio.get_running_loop().run_in_executor(self.pool, work, task)
        if isinstance(outcome.out, Prepared) and outcome.size is None:
            await admit(len(outcome.out.data))
        return outcome

    def close(self) -> None:
        """The pool shut down, its queued images cancelled. A process pool's workers are waited for (each ends
        after at most the image it is on): the CLI leaves by ``os._exit``, which would leave them behind.
        Idempotent."""
        self.pool.shutdown(wait=isinstance(self.pool, ProcessPoolExecutor), cancel_futures=True)


def open_engine(settings: Settings, has_local: Callable[[], bool]) -> Engine:
    """The run's engine: the local pool, or (``--engine ray``) a ``RayEngine`` joined to its cluster.
    ``has_local`` says whether the input names local files (asked only of a multi-node cluster). Raises
    ``ConfigError`` (before anything is uploaded) when Ray cannot serve the run."""
    if settings.engine == "ray":
        from pipeline.engines.ray_engine import RayEngine  # imports ray: only for a run that asks for it

        return RayEngine.open(settings, has_local)
    from pipeline.runner.pool import make_pool  # the runner imports this module: its package loads first

    pool, size = make_pool(settings)
    return LocalEngine(pool, 4 * size)  # a few jobs queued per worker: none idles between two images
