"""Before any upload with ``--attach``: each person's rows, the primaries checked, the persons looked up, the
rows past ``person_max`` known, and the attach calls a killed run left unfinished reconciled.

``collect`` is one pass over the manifest's rows (names and keys only); ``validate`` stops the run on two
rows marked primary for one person. With the client open (after its preflight), ``prepare`` first settles
every journaled intent (``reconcile``: a create by looking the name up, an add by the person's thumbnail
count against the count before the call plus the keys sent), then looks each person up once (the journal's
known id, else the name: one filtered list call per name, or the whole list when there are many names; an
id's thumbnail count) and plans the refusals (``person_full``, ``person_not_found``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import structlog

from pipeline.attach import AttachRow, AttachSettings, PersonInfo, PersonsApi, PersonState, Target, plan, validate
from pipeline.attach.planner import RowRefusal
from pipeline.client import ApiClient
from pipeline.errors import ApiError, ConfigError, FatalApiError, ServiceUnavailableError
from pipeline.journal import AttachIntent, Journal, KnownPerson
from pipeline.manifest import Manifest
from pipeline.models import Row, Status
from pipeline.runner.control import RunControl

__all__ = ["AttachBook", "collect", "look_up", "now_utc", "open_attach", "prepare", "reconcile", "target_of",
           "target_text"]

log = structlog.get_logger("pipeline.runner")

WHOLE_LIST_FROM = 20
"""Names to look up from which one listing of every person (1000 a page) is cheaper than a call per name."""


def now_utc() -> str:
    """The current UTC time as the journal writes timestamps."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def target_of(row: Row) -> Target | None:
    """Whom a row belongs to: its ``person_id`` when set (add to that person), else its ``person``."""
    if row.person_id is not None:
        return Target(person_id=row.person_id)
    if row.person is not None:
        return Target(name=row.person)
    return None


def target_text(target: Target) -> str:
    """The journal's form of a target: ``id:<person id>`` or ``name:<name>``."""
    return f"id:{target.person_id}" if target.person_id is not None else f"name:{target.name}"


def _parse(text: str) -> Target:
    kind, _, value = text.partition(":")
    return Target(person_id=value) if kind == "id" else Target(name=value)


@dataclass
class AttachBook:
    """What the attach stage knows, per person: its rows in input order (accepted ones: a key once
    uploaded, ``attached`` once done), what the person was before this run (``info``), its thumbnail count
    now, and the rows refused before upload. Owned by one event loop; mutated by the attach stage only."""

    rows: dict[Target, list[AttachRow]] = field(default_factory=dict)
    info: dict[Target, PersonInfo] = field(default_factory=dict)
    count: dict[Target, int] = field(default_factory=dict)
    refusals: dict[str, RowRefusal] = field(default_factory=dict)
    target_by_key: dict[str, Target] = field(default_factory=dict)
    created: set[Target] = field(default_factory=set)
    extended: set[Target] = field(default_factory=set)
    attached: int = 0

    def wants(self, row_key: str) -> bool:
        """Whether the row is one to attach (it has a person and was not refused)."""
        return row_key in self.target_by_key

    def arrive(self, row_key: str, thumbnail_key: str) -> Target:
        """Note the row's uploaded key; returns its target."""
        target = self.target_by_key[row_key]
        group = self.rows[target]
        for i, row in enumerate(group):
            if row.row_key == row_key:
                group[i] = replace(row, thumbnail_key=thumbnail_key)
        return target

    def settle(self, target: Target, row_keys: set[str], *, attached: bool) -> None:
        """The rows are attached (or, failed, leave this run's plan)."""
        group = self.rows[target]
        if attached:
            self.rows[target] = [replace(r, attached=True) if r.row_key in row_keys else r for r in group]
            self.attached += len(row_keys)
        else:
            self.rows[target] = [r for r in group if r.row_key not in row_keys]

    def counts(self) -> dict[str, int]:
        """Persons created and extended and thumbnails attached by this run (``Summary.attach``)."""
        return {"persons_created": len(self.created), "persons_extended": len(self.extended - self.created),
                "thumbnails_attached": self.attached}

    def waiting(self, target: Target) -> int:
        """Rows of the person that are neither uploaded nor attached yet."""
        return sum(1 for r in self.rows[target] if r.thumbnail_key is None and not r.attached)


def collect(manifest: Manifest, journal: Journal) -> list[AttachRow]:
    """Every row with a person, in input order, ``attached`` when the journal says so; raises
    ``ConfigError`` (exit 2, before any upload) when a person has two rows marked primary."""
    found: list[AttachRow] = []
    for batch in manifest.row_batches():
        mine = [(row, t) for row in batch.rows if (t := target_of(row)) is not None]
        entries = journal.lookup([row.key for row, _ in mine])
        for row, target in mine:
            entry = entries.get(row.key)
            done = entry is not None and entry.status is Status.ATTACHED
            found.append(AttachRow(row.key, target, row.primary, attached=done))
    conflicts = validate(found)
    if conflicts:
        raise ConfigError("; ".join(str(c) for c in conflicts) + ": mark one row primary per person "
                          "(nothing was uploaded).")
    return found


async def reconcile(api: PersonsApi, journal: Journal, intent: AttachIntent) -> bool:
    """Settle one intent left by a call whose outcome is unknown: ``True`` when the call happened (its rows
    are journaled ``attached``), ``False`` when it did not (the intent is dropped; the rows stay to attach).
    """
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
    journal.mark_attached(intent.row_keys, KnownPerson(intent.target, person_id, intent.kind == "create"),
                          now_utc(), intent=intent.id)
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
    journal's known id, the target's own id, else its name; a target with no such person is left out."""
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


async def prepare(api: PersonsApi, journal: Journal, rows: list[AttachRow], person_max: int) -> AttachBook:
    """Reconcile the journal's intents, look the persons up and plan the refusals: the ``AttachBook``."""
    for intent in journal.intents():
        await reconcile(api, journal, intent)
    attached_now = {r.row_key for r in rows if not r.attached}
    if attached_now:
        entries = journal.lookup(sorted(attached_now))
        rows = [replace(r, attached=True) if (e := entries.get(r.row_key)) is not None
                and e.status is Status.ATTACHED else r for r in rows]
    groups: dict[Target, list[AttachRow]] = {}
    for row in rows:
        groups.setdefault(row.target, []).append(row)
    todo = [t for t, g in groups.items() if not all(r.attached for r in g)]
    found = await look_up(api, journal, todo)
    book = AttachBook()
    for target in todo:
        group = groups[target]
        state = found.get(target)
        if state is None:
            if target.person_id is None:
                book.info[target] = PersonInfo(None)
                book.count[target] = 0
            continue
        mine = sum(r.attached for r in group)
        book.info[target] = PersonInfo(state.id, max(0, state.count - mine), state.primary_id is not None)
        book.count[target] = state.count
        if target.name is not None:
            journal.remember_person(KnownPerson(target_text(target), state.id, False))
    known_info = {t: i for t, i in book.info.items() if i.person_id is not None}
    refused = plan([r for t in todo for r in groups[t]], known_info, person_max).refused
    book.refusals = {r.row_key: r for r in refused}
    for target in todo:
        accepted = [r for r in groups[target] if r.row_key not in book.refusals]
        if target in book.info and accepted:
            book.rows[target] = accepted
            book.target_by_key.update((r.row_key, target) for r in accepted if not r.attached)
    log.info("attach_planned", persons=len(book.rows), to_create=sum(i.person_id is None for i in book.info.values()),
             refused=len(book.refusals))
    return book


async def open_attach(client: ApiClient, journal: Journal, control: RunControl, rows: list[AttachRow] | None,
                      settings: AttachSettings) -> tuple[PersonsApi, AttachBook] | None:
    """The persons client and the planned ``AttachBook`` (``None`` without ``--attach`` or after a fatal
    answer). Lookups that keep failing stop the run before any upload: uploading keys that cannot be
    attached would leave them to expire."""
    if rows is None or control.fatal is not None:
        return None
    api = PersonsApi(client, settings)
    try:
        return api, await prepare(api, journal, rows, settings.person_max)
    except FatalApiError as exc:
        control.fail(exc)
    except ApiError as exc:
        control.fail(ServiceUnavailableError(
            f"The persons API kept failing while the persons were looked up ({exc}); nothing was uploaded: "
            "run the same command again later."))
    return None
