"""Before any upload with ``--attach``: each person's rows, the primaries checked, the names the API cannot
take refused, and the attach calls a killed run left unfinished reconciled. No person is looked up here.

``collect`` is one pass over the manifest's rows (names and keys only): each row's target (its name
normalised: ``attach.names``), ``attached`` when the journal holds it attached to that very person; it stops
the run on two rows marked primary for one person. With the client open (after its preflight),
``open_attach`` settles every journaled intent, if any (``reconcile``: a create by looking the name up, an
add by the person's thumbnail count against the count before the call plus the keys sent), and builds the
``AttachBook`` with its ``Lookups``: each person is looked up when it is first needed (``attach_lookups``).
"""

from __future__ import annotations

from dataclasses import replace

import structlog

from pipeline.attach import AttachRow, AttachSettings, PersonsApi, PersonState, Target, validate
from pipeline.attach.names import normalise, problem
from pipeline.attach.planner import RowRefusal
from pipeline.client import ApiClient
from pipeline.clock import now_text as now_utc  # the runner's stamps are the journal's: one clock, one format
from pipeline.errors import ApiError, ConfigError, FatalApiError, ServiceUnavailableError
from pipeline.journal import AttachIntent, Journal, KnownPerson
from pipeline.manifest import Manifest
from pipeline.models import Row, Status
from pipeline.runner.attach_book import AttachBook
from pipeline.runner.attach_lookups import WHOLE_LIST_FROM, Lookups, target_text
from pipeline.runner.control import RunControl
from pipeline.runner.recorder import Recorder

__all__ = ["AttachBook", "Collected", "collect", "look_up", "now_utc", "open_attach", "reconcile", "same_person",
           "target_of", "target_text"]

log = structlog.get_logger("pipeline.runner")


def target_of(row: Row) -> Target | None:
    """Whom a row belongs to: its ``person_id`` when set (add to that person), else its ``person``, normalised
    (``attach.names.normalise``: ``Alice``, ``Alice `` and ``Alice<U+200B>`` are one person)."""
    if row.person_id is not None:
        return Target(person_id=row.person_id)
    if row.person is not None:
        return Target(name=normalise(row.person))
    return None


def _parse(text: str) -> Target:
    kind, _, value = text.partition(":")
    return Target(person_id=value) if kind == "id" else Target(name=value)


class Collected(list[AttachRow]):
    """``collect``'s rows, in input order, with the rows refused before any look-up (``invalid_person``) and
    the rows the journal holds rejected (``rejected``), ``person_full`` among them (``full``)."""

    refusals: dict[str, RowRefusal]
    rejected: set[str]
    full: set[str]

    def __init__(self, rows: list[AttachRow], refusals: dict[str, RowRefusal], rejected: set[str],
                 full: set[str]) -> None:
        super().__init__(rows)
        self.refusals, self.rejected, self.full = refusals, rejected, full


def same_person(target: Target, person_id: str | None, known: dict[str, KnownPerson]) -> bool:
    """Whether ``person_id`` (where the journal holds a row attached) is ``target``'s person (``known``: the
    journal's ``known_persons()``). A row attached elsewhere has changed person: it is attached again."""
    mine = target.person_id if target.person_id is not None else (
        known[target_text(target)].person_id if target_text(target) in known else None)
    return person_id is not None and mine == person_id


def collect(manifest: Manifest, journal: Journal) -> Collected:
    """Every row with a person, in input order, ``attached`` when the journal holds it attached to that
    person (a row whose person changed is to attach again), and the rows whose name the API cannot take
    (``invalid_person``, never uploaded); raises ``ConfigError`` (exit 2, before any upload) when a person has
    two rows marked primary. Logs one ``person_names_normalised`` warning when names were normalised."""
    found: list[AttachRow] = []
    refusals: dict[str, RowRefusal] = {}
    full: set[str] = set()
    rejected: set[str] = set()
    changed: set[str] = set()
    known = journal.known_persons()
    for batch in manifest.row_batches():
        mine = [(row, t) for row in batch.rows if (t := target_of(row)) is not None]
        entries = journal.lookup([row.key for row, _ in mine])
        for row, target in mine:
            if row.person_id is None and row.person is not None and row.person != target.name:
                changed.add(row.person)
            why = problem(target.name) if target.name is not None else None
            if why is not None:
                refusals[row.key] = RowRefusal(row.key, "invalid_person",
                                               f"the person name {row.person!r} {why}: fix it in the manifest")
                continue
            entry = entries.get(row.key)
            if entry is not None and entry.status is Status.REJECTED:
                rejected.add(row.key)
                if entry.reason == "person_full":
                    full.add(row.key)
            done = (entry is not None and entry.status is Status.ATTACHED
                    and same_person(target, entry.person_id, known))
            found.append(AttachRow(row.key, target, row.primary, attached=done))
    if changed:
        log.warning("person_names_normalised", names=len(changed),
                    action="surrounding spaces and zero-width characters were removed; rows whose names differ "
                           "only by them are one person")
    conflicts = validate(found)
    if conflicts:
        raise ConfigError("; ".join(str(c) for c in conflicts) + ": mark one row primary per person "
                          "(nothing was uploaded).")
    return Collected(found, refusals, rejected, full)


async def reconcile(api: PersonsApi, recorder: Recorder, intent: AttachIntent) -> bool:
    """Settle one intent left by a call whose outcome is unknown: ``True`` when the call happened (its rows
    are journaled ``attached`` through the recorder; counted by whoever made the call), ``False`` when it did
    not (the intent is dropped; the rows stay to attach)."""
    journal = recorder.journal
    target = _parse(intent.target)
    person_id = intent.person_id
    if intent.kind == "create":
        assert target.name is not None
        found = await api.find_by_name(target.name)
        person_id = found[0].id if found else None
    state = await api.count(person_id) if person_id is not None else None
    if person_id is None or state is None or state.count < intent.count_before + len(intent.thumbnail_keys):
        journal.forget_intent(intent.id)
        log.info("attach_reconciled", kind=intent.kind, target=str(target), happened=False)
        return False
    recorder.attached(intent.row_keys, KnownPerson(intent.target, person_id, intent.kind == "create"), now_utc(),
                      intent=intent.id, counted=False)
    log.info("attach_reconciled", kind=intent.kind, target=str(target), happened=True, person_id=person_id)
    return True


async def _names(api: PersonsApi, names: list[str]) -> dict[str, str]:
    """The person id of each name that exists (first match)."""
    if len(names) >= WHOLE_LIST_FROM:
        wanted = set(names)
        return {p.name: p.id for p in reversed(await api.list_all()) if p.name in wanted}
    ids: dict[str, str] = {}
    for name in names:
        found = await api.find_by_name(name)
        if found:
            ids[name] = found[0].id
    return ids


async def look_up(api: PersonsApi, journal: Journal, targets: list[Target]) -> dict[Target, PersonState]:
    """Each target's person as the workspace holds it now, read-only (list and details calls only): by the
    journal's known id, the target's own id, else its name; a target with no such person is left out. The
    dry run's look-up, all at once (a real run looks each person up when needed: ``Lookups``)."""
    known = journal.known_persons()
    ids = {t: known[target_text(t)].person_id for t in targets if target_text(t) in known}
    ids.update({t: t.person_id for t in targets if t.person_id is not None})
    by_name = await _names(api, [t.name for t in targets if t not in ids and t.name is not None])
    ids.update({t: by_name[t.name] for t in targets if t.name in by_name and t not in ids})
    found: dict[Target, PersonState] = {}
    for target in targets:
        pid = ids.get(target)
        state = await api.count(pid) if pid is not None else None
        if state is not None:
            found[target] = state
    return found


async def prepare(api: PersonsApi, recorder: Recorder, rows: list[AttachRow], person_max: int,
                  refusals: dict[str, RowRefusal] | None = None, rejected: set[str] | None = None,
                  full: set[str] | None = None) -> AttachBook:
    """Reconcile the journal's intents (person calls only when there are some) and build the ``AttachBook``
    with its ``Lookups`` (no look-up yet)."""
    journal = recorder.journal
    intents = journal.intents()
    for intent in intents:
        await reconcile(api, recorder, intent)
    if intents:  # a reconciled call attached rows
        entries = journal.lookup(sorted(r.row_key for r in rows if not r.attached))
        rows = [replace(r, attached=True) if (e := entries.get(r.row_key)) is not None
                and e.status is Status.ATTACHED else r for r in rows]
    book = AttachBook.of(rows, person_max, refusals or {}, rejected or set(), full or set())
    known = journal.known_persons()
    names = {t.name for t in book.target_by_key.values() if t.name is not None and target_text(t) not in known}
    book.lookups = Lookups(api, journal, book.learn, names=len(names))
    log.info("attach_planned", persons=len(book.groups), to_attach=len(book.target_by_key) - len(book.kept_full),
             invalid_person=len(refusals or {}), person_full_kept=len(book.kept_full))
    return book


async def open_attach(client: ApiClient, recorder: Recorder, control: RunControl, rows: list[AttachRow] | None,
                      settings: AttachSettings) -> tuple[PersonsApi, AttachBook] | None:
    """The persons client and the ``AttachBook`` (``None`` without ``--attach`` or after a fatal answer).
    Reconciliations that keep failing stop the run before any upload."""
    if rows is None or control.fatal is not None:
        return None
    api = PersonsApi(client, settings)
    refusals = rows.refusals if isinstance(rows, Collected) else {}
    rejected, full = (rows.rejected, rows.full) if isinstance(rows, Collected) else (set(), set())
    try:
        return api, await prepare(api, recorder, rows, settings.person_max, refusals, rejected, full)
    except FatalApiError as exc:
        control.fail(exc)
    except ApiError as exc:
        control.fail(ServiceUnavailableError(
            f"The persons API kept failing while unfinished attach calls were checked ({exc}); nothing was "
            "uploaded: run the same command again later."))
    return None
