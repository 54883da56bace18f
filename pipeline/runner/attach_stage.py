"""``AttachStage``: attaches uploaded keys to their persons while the run goes on (``--attach``).

Keys arrive from the upload stage (just uploaded) and from the plan stage (uploaded by an earlier run). A
person's keys are sent when all its rows are in, when 100 wait, when the oldest has waited ``hold`` seconds
(a fraction of ``attach_within``, so no key nears its 24 h expiry while the run is alive) or at the end of
the input: a create with what is there, adds for the rest, the primary set when the marked row arrives
(``attach.plan``). One call at a time per person (the thumbnail count before an add must be exact for the
reconciliation of a killed run); persons in parallel under the persons limiter. Each call's intent is
journaled before it is made and ends with its outcome in one transaction.

A key uploaded by an earlier run may arrive before its person was looked up: it waits for the look-up (which
may refuse it ``person_full``). The loop sleeps until a call ends, a key or a look-up arrives, or the next
person is due; never while every persons slot is busy. A key the service says expired (or does not know)
fails ``attach_failed`` alone (the call is made again without it) with a detail that makes the next run
upload it again. A row attached again (its source or its person changed) says so in its detail: its earlier
thumbnail stays with its person.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog

from pipeline.attach import PersonInfo, PersonRef, PersonsApi, PersonState, PlannedCall, Refused, Target, plan
from pipeline.errors import ApiError, FatalApiError, ServiceUnavailableError
from pipeline.journal import AttachIntent, KnownPerson
from pipeline.runner.attach_prep import AttachBook, now_utc, reconcile, target_text
from pipeline.runner.attach_route import KEY_GONE, gone_keys
from pipeline.runner.context import RunContext
from pipeline.runner.records import Attachable, Pipe

__all__ = ["AttachStage"]

log = structlog.get_logger("pipeline.runner")

HOLD_MAX = 5.0
"""Longest wait (seconds) for a person's other rows before its waiting keys are sent anyway."""
PERSONS_IN_FLIGHT = 32


@dataclass(frozen=True, slots=True)
class _Done:
    """A call's outcome for the journal: attached to ``person`` (``None``: failed with ``detail``)."""

    person: KnownPerson | None
    detail: str = ""
    state: PersonState | None = None


class AttachStage:
    """Reads ``Attachable`` rows to the end of its inbox and attaches them (see the module docstring)."""

    def __init__(self, ctx: RunContext, api: PersonsApi, book: AttachBook, inbox: Pipe[Attachable]) -> None:
        self.recorder, self.journal, self.control, self.clock = ctx.recorder, ctx.journal, ctx.control, ctx.clock
        self.api, self.book, self.inbox = api, book, inbox
        self._fresh: set[str] = set()
        """Keys this run uploaded and has not attached yet: the recorder moves their count on from ``uploaded``."""
        self.person_max = ctx.settings.persons.person_max
        self.hold = min(ctx.settings.persons.attach_within / 4, HOLD_MAX)
        self.since: dict[Target, float] = {}
        """When the oldest waiting key of each person arrived (a person absent here has none waiting)."""
        self.busy: dict[Target, asyncio.Task[None]] = {}
        self.lags: list[float] = []
        self.turns = 0
        """Iterations of the loop (a test's check that it sleeps while it waits)."""
        self._arrived: dict[str, float] = {}
        self._parked: dict[Target, list[Attachable]] = {}
        """Keys whose person is being looked up."""
        self._replaced: dict[str, Attachable] = {}
        """Rows attached again: what they replace."""

    async def run(self) -> None:
        """Batch, plan and call until the inbox is closed and every key is attached, refused or left for a
        re-run (a fatal answer); sleeps while it waits (an arrival, a call or look-up ending, a batch due)."""
        getter: asyncio.Task[Attachable | None] | None = None
        # After a signal, keys still attach, for the client's --stop-grace: then the rest stay uploaded (a call
        # under way stays an intent) and the next run attaches them.
        grace_over = asyncio.ensure_future(self.api.client.grace_over.wait())
        closed = False
        try:
            while not closed or self.since or self.busy or self._parked:
                self.turns += 1
                self._launch(final=closed or self.control.stopping.is_set())
                waits = self._waits()
                if not closed:
                    getter = getter or asyncio.ensure_future(self.inbox.get())
                    waits.add(getter)
                if not waits:
                    break  # keys wait, none can be sent (a fatal answer): they stay uploaded for a re-run
                done, _ = await asyncio.wait(waits | {grace_over}, timeout=self._next_due(),
                                             return_when=asyncio.FIRST_COMPLETED)
                if grace_over in done:
                    self.inbox.cut()  # an upload ending now hands on no key: it stays uploaded for the next run
                    self._left_at_grace()
                    break
                if getter is not None and getter in done:
                    closed, getter = self._take(getter.result()), None
                self._unpark()
                _raise_failed(done, getter)
        finally:
            grace_over.cancel()
            if getter is not None:
                getter.cancel()
            for task in self.busy.values():
                task.cancel()
            if self.book.lookups is not None:
                await self.book.lookups.close()

    def _left_at_grace(self) -> None:
        """The stop's grace ran out: say how many keys are left unattached (uploaded, for the next run)."""
        left = len(set(self.since) | set(self.busy) | set(self._parked))
        if left:
            log.warning("attach_left", persons=left, action="their keys stay uploaded; the next run attaches "
                        "them (within 24 h of the upload, before the keys expire)")

    def _waits(self) -> set[asyncio.Future[Any]]:
        """What the loop waits on besides the inbox: the calls in flight and, unless a fatal answer stopped the
        persons calls, the look-ups of persons whose keys are parked."""
        waits: set[asyncio.Future[Any]] = set(self.busy.values())
        if self.control.fatal is None:
            waits.update(self._lookup(t) for t in self._parked)
        return waits

    def _lookup(self, target: Target) -> asyncio.Future[Any]:
        assert self.book.lookups is not None
        return self.book.lookups.want(target)

    def _unpark(self) -> None:
        """Hand on the keys whose person's look-up ended: to attach, or refused (recorded by the route)."""
        for target in [t for t in self._parked if self._lookup(t).done()]:
            items = self._parked.pop(target)
            future = self._lookup(target)
            error = None if future.cancelled() else future.exception()
            if error is not None or future.cancelled():
                if isinstance(error, FatalApiError):
                    self.control.fail(error)
                elif error is not None:
                    self.control.fail(ServiceUnavailableError(
                        f"The persons API kept failing while {target} was looked up ({error}); its keys stay "
                        "uploaded for the next run."))
                continue
            for item in items:
                self._arrive(item)

    def _take(self, item: Attachable | None) -> bool:
        """Take what the inbox handed over; ``True`` when it was its end."""
        if item is None:
            return True
        self._arrive(item)
        return False

    def _arrive(self, item: Attachable) -> None:
        target = self.book.target_by_key.get(item.row_key)
        if target is None:
            refusal = self.book.refusals.get(item.row_key)
            if refusal is not None and not item.fresh and self.book.held_refused is not None:
                self.book.held_refused(item.row_key, refusal)  # its person's look-up refused it
            return
        if not self.book.known(target):
            self._parked.setdefault(target, []).append(item)
            self._lookup(target)
            return
        if item.replaces is not None or item.row_key in self.book.reopened:
            self._replaced[item.row_key] = item
        target = self.book.arrive(item.row_key, item.thumbnail_key)
        now = self.clock()
        self.since.setdefault(target, now)
        self._arrived[item.row_key] = now
        if item.fresh:
            self._fresh.add(item.row_key)

    def _ready(self, target: Target, final: bool) -> bool:
        if self.control.fatal is not None or target in self.busy:
            return False
        waiting = sum(1 for r in self.book.rows[target] if r.thumbnail_key is not None and not r.attached)
        return (final or waiting >= 100 or self.book.waiting(target) == 0
                or self.clock() - self.since[target] >= self.hold)

    def _launch(self, final: bool) -> None:
        for target in list(self.since):
            if len(self.busy) >= PERSONS_IN_FLIGHT:
                return
            if self._ready(target, final):
                del self.since[target]
                task = asyncio.create_task(self._attach(target))
                self.busy[target] = task
                task.add_done_callback(partial(self._finished, target))

    def _finished(self, target: Target, _task: asyncio.Task[None]) -> None:
        self.busy.pop(target, None)

    def _next_due(self) -> float | None:
        """Seconds until the oldest waiting key of a person that is not busy is due; ``None`` when none
        is (a busy person's task wakes the loop when it ends; after a fatal answer nothing is sent)."""
        due = [t for target, t in self.since.items() if target not in self.busy]
        if not due or self.control.fatal is not None or len(self.busy) >= PERSONS_IN_FLIGHT:
            return None  # every persons slot busy: the first task to end wakes the loop
        return max(0.0, min(due) + self.hold - self.clock())

    async def _attach(self, target: Target) -> None:
        """Make the person's calls for its uploaded, unattached rows, one after the other."""
        while self.control.fatal is None:
            info = self.book.info[target]
            known = {target: info} if info.person_id is not None else {}
            calls = plan(self.book.rows[target], known, self.person_max).calls
            if not calls:
                return
            await self._call(target, calls[0])

    async def _call(self, target: Target, call: PlannedCall) -> None:
        """One create/add with its intent. Each call ends the rows it sent (attached or failed) or learns
        that the name exists, so the person's next plan makes progress."""
        info = self.book.info[target]
        before = self.book.count.get(target, 0)
        keys = tuple(t.row_key for t in call.thumbnails)
        intent = AttachIntent(secrets.token_hex(8), call.kind, target_text(target), info.person_id, keys,
                              tuple(t.thumbnail_key for t in call.thumbnails), before)
        self.journal.intend(intent)
        try:
            if call.kind == "create":
                assert target.name is not None
                done = self._created(target, await self.api.create(target.name, call.thumbs()), len(keys))
            else:
                assert info.person_id is not None
                done = self._added(target, await self.api.add(info.person_id, call.thumbs()), before, len(keys))
        except FatalApiError as exc:
            self.journal.forget_intent(intent.id)  # refused outright: nothing was attached
            self.control.fail(exc)
            return
        except ApiError as exc:  # retries ran out: the call may have happened; ask the API
            try:
                happened = await reconcile(self.api, self.recorder, intent)
            except ApiError:
                happened = False  # the intent stays for the next run's reconciliation
            if happened:
                self._settled(target, intent, None)
                return
            done = _Done(None, f"{type(exc).__name__}: {exc}")
        if done.person is None and done.state is not None:  # the name exists: add to that person next
            self.journal.forget_intent(intent.id)
            self.book.info[target] = PersonInfo(done.state.id, done.state.count, done.state.primary_id is not None)
            self.book.count[target] = done.state.count
            self.journal.remember_person(KnownPerson(intent.target, done.state.id, False))
            return
        gone = gone_keys(done.detail, {t.thumbnail_key for t in call.thumbnails}) if done.person is None else set()
        if gone:  # the service no longer knows these keys: they fail alone, the next plan sends the others
            keys = tuple(t.row_key for t in call.thumbnails if t.thumbnail_key in gone)
            done = _Done(None, f"{KEY_GONE}; the next run uploads it again ({done.detail})")
        if done.person is None:
            failed = self.recorder.attach_failed(keys, done.detail, intent=intent.id, fresh=self._fresh)
            self._fresh.difference_update(failed)
            self.book.settle(target, set(keys), attached=False)
            return
        self._settled(target, intent, done.person)

    def _settled(self, target: Target, intent: AttachIntent, person: KnownPerson | None) -> None:
        """Journal (unless reconciliation did) and note the attached rows."""
        if person is not None:
            details = {k: self._again(k, person.person_id) for k in intent.row_keys if k in self._replaced}
            self.recorder.attached(intent.row_keys, person, now_utc(), intent=intent.id, details=details,
                                   fresh=self._fresh)
        else:  # journaled by the reconciliation; counted here
            self.recorder.count_attached(intent.row_keys, fresh=self._fresh)
        self._fresh.difference_update(intent.row_keys)
        for key in intent.row_keys:
            if self._replaced.pop(key, None) is not None:
                self.book.superseded += 1
        now = self.clock()
        self.lags.extend(now - self._arrived.pop(k, now) for k in intent.row_keys)
        self.book.settle(target, set(intent.row_keys), attached=True)
        (self.book.created if intent.kind == "create" else self.book.extended).add(target)
        if intent.kind == "create":
            pid = person.person_id if person is not None else None
            self.book.info[target] = PersonInfo(pid or self.journal.known_persons()[intent.target].person_id)
            self.book.count[target] = len(intent.row_keys)
        else:
            self.book.count[target] = intent.count_before + len(intent.row_keys)

    def _again(self, row_key: str, person_id: str) -> str:
        """The detail of a row attached again: where its earlier thumbnail stays."""
        item = self._replaced[row_key]
        old = item.replaced_person or person_id
        earlier = f"the earlier thumbnail {item.replaces}" if item.replaces else "its earlier thumbnail"
        stays = f"{earlier} stays with person {old} (the API cannot remove one)"
        if old != person_id:
            return f"moved to person {person_id}; {stays}"
        return f"attached again: its source changed; {stays}"

    def _created(self, target: Target, got: PersonRef | Refused, n: int) -> _Done:
        text = target_text(target)
        if isinstance(got, PersonRef):
            return _Done(KnownPerson(text, got.id, True))
        if got.reason == "name_exists" and got.person_id is not None and got.state is not None:
            if got.state.count == n:  # an earlier try of this very call created it; its answer was lost
                return _Done(KnownPerson(text, got.person_id, True))
            return _Done(None, state=got.state)
        return _Done(None, f"{got.reason}: {got.detail}")

    def _added(self, target: Target, got: PersonState | Refused, before: int, n: int) -> _Done:
        person = KnownPerson(target_text(target), self.book.info[target].person_id or "", False)
        if isinstance(got, PersonState):
            return _Done(person)
        if got.state is not None and got.state.count >= before + n:  # a retry of a call that had happened
            return _Done(person)
        return _Done(None, f"{got.reason}: {got.detail}")


def _raise_failed(done: set[asyncio.Future[Any]], getter: asyncio.Future[Any] | None) -> None:
    """Raise the error of a call or look-up task that ended with one (the inbox's getter is not one of them)."""
    for task in done:
        if isinstance(task, asyncio.Task) and task is not getter and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
