"""``Lookups``: each person looked up once, when it is first needed, beside the uploads (``--attach``).

A target is wanted when one of its rows is about to be uploaded (``AttachRoute.admit``) or one of its held
keys reaches the attach stage; nothing else causes a person call, so a run with nothing to attach makes none.
One task works through the wanted targets in rounds: a round takes every target waiting, and looks their
names up in one listing of every person, made once in the run, when the run may ask for at least
``WHOLE_LIST_FROM`` names (else one filtered list call per name), then counts each existing person's thumbnails,
all under the persons limiter. A person this run creates is known from its create's answer. Targets
wanted meanwhile wait for the next round, so a burst of new persons costs one listing, not a call each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from pipeline.attach import PersonsApi, PersonState, Target
from pipeline.journal import Journal, KnownPerson

__all__ = ["WHOLE_LIST_FROM", "Lookups"]

log = structlog.get_logger("pipeline.runner")

WHOLE_LIST_FROM = 20
"""Names waiting from which one listing of every person (1000 a page) is cheaper than a call per name."""


def target_text(target: Target) -> str:
    """The journal's form of a target: ``id:<person id>`` or ``name:<name>``."""
    return f"id:{target.person_id}" if target.person_id is not None else f"name:{target.name}"


class Lookups:
    """Per-target futures of the person as the workspace holds it (``None``: no such person), resolved by
    one background task; ``learn`` is called with each answer before its future is resolved. A failed
    round sets its exception on the round's futures (the caller decides what it means for the run)."""

    def __init__(self, api: PersonsApi, journal: Journal,
                 learn: Callable[[Target, PersonState | None], None], *, names: int = 0) -> None:
        self.api, self.journal, self._learn = api, journal, learn
        self._known = {t: p.person_id for t, p in journal.known_persons().items()}
        self._listing = names >= WHOLE_LIST_FROM
        """The run may ask for ``names`` names the journal does not know: from ``WHOLE_LIST_FROM`` on, the first
        round lists every person once and later rounds read names from that listing (a call per name would
        double the persons calls of a run creating persons: look-up, then create)."""
        self._directory: dict[str, str] | None = None
        """Name -> person id of every person, once listed."""
        self._futures: dict[Target, asyncio.Future[PersonState | None]] = {}
        self._queue: list[Target] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.rounds: list[int] = []
        """How many targets each round looked up (for tests and the log)."""

    def want(self, target: Target) -> asyncio.Future[PersonState | None]:
        """The target's look-up: started (queued for the next round) on the first call."""
        future = self._futures.get(target)
        if future is None:
            future = self._futures[target] = asyncio.get_running_loop().create_future()
            self._queue.append(target)
            self._wake.set()
            if self._task is None:
                self._task = asyncio.create_task(self._work())
        return future

    def pending(self) -> bool:
        """Whether any wanted target is not looked up yet."""
        return any(not f.done() for f in self._futures.values())

    async def close(self) -> None:
        """Stop the background task (the run is over); waiting futures are cancelled."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for future in self._futures.values():
            future.cancel()

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # targets wanted in the same loop iteration share this round
            batch, self._queue = self._queue, []
            if not batch:
                continue
            self.rounds.append(len(batch))
            try:
                await self._round(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an API error, a fatal answer: every waiting target of the round hears it
                for target in batch:
                    future = self._futures[target]
                    if not future.done():
                        future.set_exception(exc)
                        future.exception()  # retrieved: a round nobody awaits any more logs nothing

    async def _round(self, batch: list[Target]) -> None:
        """One round of look-ups: ids known (the journal, a ``person_id`` cell) are counted; names are found
        in the whole listing once 20+ wait (or after a listing), else one search each."""
        ids = {t: self._known[target_text(t)] for t in batch if target_text(t) in self._known}
        ids.update({t: t.person_id for t in batch if t.person_id is not None})
        names = [t.name for t in batch if t not in ids and t.name is not None]
        if names and self._directory is None and (self._listing or len(names) >= WHOLE_LIST_FROM):
            # The first match of a name wins, as find_by_name's first result does.
            self._directory = {p.name: p.id for p in reversed(await self.api.list_all()) if p.name is not None}
        search = self._directory is None
        if not search:
            ids.update(self._listed(batch, ids))
        await asyncio.gather(*(self._one(t, ids.get(t), search=search) for t in batch))

    def _listed(self, batch: list[Target], ids: dict[Target, str]) -> dict[Target, str]:
        """The ids the listing gives the names of ``batch`` not already in ``ids``."""
        directory = self._directory or {}
        return {t: directory[t.name] for t in batch if t not in ids and t.name is not None and t.name in directory}

    async def _one(self, target: Target, person_id: str | None, *, search: bool) -> None:
        if person_id is None and search and target.name is not None:
            found = await self.api.find_by_name(target.name)
            person_id = found[0].id if found else None
        state = await self.api.count(person_id) if person_id is not None else None
        if state is not None and target.name is not None:
            self.journal.remember_person(KnownPerson(target_text(target), state.id, False))
        self._learn(target, state)
        future = self._futures[target]
        if not future.done():
            future.set_result(state)
