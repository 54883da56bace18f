"""The plan a dry run with ``--attach`` shows: persons to create and to extend, thumbnails each would get,
rows ``person_full``, counted against what the persons already hold.

A dry run uploads nothing and changes nothing, but may *read*: when the endpoint answers and a key pair is
found (the environment or ``~/.ncloud/configure``), each name is looked up read-only (the list call filtered
by name, a GET) and each existing person's thumbnails counted (its details, a GET). When that cannot be done,
the plan says so (``names_not_looked_up``, and an ``attach_lookup_skipped`` event with the reason) instead
of counting names it does not know as persons to create.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

import structlog

from pipeline.attach import AttachRow, AttachSettings, PersonInfo, PersonsApi, PlannedCall, Target, plan
from pipeline.client import ApiClient, ApiSettings
from pipeline.client.stopping import RowInterrupted, until
from pipeline.config import load_credentials
from pipeline.errors import ConfigError, IngestError
from pipeline.journal import Journal
from pipeline.runner.attach_prep import Collected, look_up, target_text
from pipeline.runner.control import RunControl

__all__ = ["DRY_RUN_CREDENTIALS", "dry_lookup", "dry_plan"]

log = structlog.get_logger("pipeline.runner")

DRY_RUN_CREDENTIALS = "dry-run"
"""The placeholder key a dry run gets when none was given (it needs none to run)."""


async def dry_lookup(api_settings: ApiSettings, attach: AttachSettings, journal: Journal,
                     rows: list[AttachRow], control: RunControl) -> tuple[dict[Target, PersonInfo] | None, str | None]:
    """What the workspace holds of the rows' persons (read-only): ``(infos, None)``, or ``(None, why)`` when
    it cannot be looked up (no key pair, the endpoint does not answer, an error, a signal: it ends the look-up
    at once)."""
    creds = api_settings.credentials
    if creds.access_key == DRY_RUN_CREDENTIALS:
        try:
            creds = load_credentials(os.environ)
        except ConfigError as exc:
            return None, f"no API key pair to look the persons up with ({exc})"
    targets = list(dict.fromkeys(r.target for r in rows if not r.attached))
    try:
        async with ApiClient(replace(api_settings, credentials=creds)) as client:
            forget = control.on_interrupt(client.halt)
            try:
                await client.preflight()  # an endpoint that does not answer is said at once, not retried for long
                found = await until(client.halted, look_up(PersonsApi(client, attach), journal, targets))
            finally:
                forget()
    except IngestError as exc:  # API errors, fatal answers, an unreachable endpoint alike
        return None, f"the persons could not be looked up ({exc})"
    except RowInterrupted:
        return None, "the persons were not looked up: the run was interrupted"
    mine = {t: sum(r.attached for r in rows if r.target == t) for t in found}  # planned apart, as attached
    infos = {t: PersonInfo(s.id, max(0, s.count - mine[t]), s.primary_id is not None) for t, s in found.items()}
    return infos, None


def dry_plan(rows: list[AttachRow], journal: Journal, person_max: int,
             infos: dict[Target, PersonInfo] | None = None, why_not: str | None = None) -> dict[str, int]:
    """What ``--attach`` would do: persons to create and to extend, thumbnails to attach, rows
    ``person_full`` (counting what the persons hold: ``infos`` from ``dry_lookup``), ids not found and rows
    whose name the API cannot take (``invalid_person``).
    Without ``infos`` only the journal is known: names it does not know are ``names_not_looked_up``, not
    guessed. Logs one ``attach_plan`` event with the first persons."""
    groups = _by_target(rows)
    if infos is None:
        infos = _known_infos(groups, journal)
        unknown = [t for t in groups if t not in infos]
    else:
        unknown = []
    missing = {t for t in groups if t.person_id is not None and t not in infos}
    asked = [r for t, g in groups.items() if t not in unknown and t not in missing for r in g]
    planned = plan(asked, {t: i for t, i in infos.items() if i.person_id is not None}, person_max)
    create = {c.target for c in planned.calls if c.kind == "create"}
    sizes = _thumbnails_by_target(planned.calls)
    counts = {"persons_to_create": len(create), "persons_to_extend": len(set(sizes) - create),
              "thumbnails_to_attach": sum(sizes.values()),
              "person_full": sum(r.reason == "person_full" for r in planned.refused)}
    counts.update(_other_counts(rows, groups, missing, unknown, why_not))
    shown = [{"person": str(t), "action": "create" if t in create else "extend", "thumbnails": n,
              **({"holds": infos[t].count} if t in infos else {})} for t, n in list(sizes.items())[:50]]
    log.info("attach_plan", **counts, persons=shown)
    return counts


def _by_target(rows: list[AttachRow]) -> dict[Target, list[AttachRow]]:
    """The rows by person, each as the planner should see it: attached, or with a stand-in key (``-``: a key
    the real run would have by then)."""
    groups: dict[Target, list[AttachRow]] = {}
    for row in rows:
        groups.setdefault(row.target, []).append(replace(row, thumbnail_key=None if row.attached else "-"))
    return groups


def _thumbnails_by_target(calls: Sequence[PlannedCall]) -> dict[Target, int]:
    """How many thumbnails the planned calls attach to each person, in the order the persons are first called."""
    sizes: dict[Target, int] = {}
    for call in calls:
        sizes[call.target] = sizes.get(call.target, 0) + len(call.thumbnails)
    return sizes


def _known_infos(groups: dict[Target, list[AttachRow]], journal: Journal) -> dict[Target, PersonInfo]:
    """The persons the journal (or a ``person_id`` cell) names, when nothing could be looked up: their counts
    unknown (0), a primary assumed."""
    known = journal.known_persons()
    infos: dict[Target, PersonInfo] = {}
    for target in groups:
        text = target_text(target)
        pid = known[text].person_id if text in known else target.person_id
        if pid is not None:
            infos[target] = PersonInfo(pid, 0, True)
    return infos


def _other_counts(rows: list[AttachRow], groups: dict[Target, list[AttachRow]], missing: set[Target],
                  unknown: list[Target], why_not: str | None) -> dict[str, int]:
    """The dry plan's counts beyond the calls: ids not found, names refused, names not looked up (and why,
    logged once)."""
    counts: dict[str, int] = {}
    if missing:
        counts["person_not_found"] = sum(len(groups[t]) for t in missing)
    if isinstance(rows, Collected) and rows.refusals:
        counts["invalid_person"] = len(rows.refusals)
    if why_not is not None:
        counts["names_not_looked_up"] = len(unknown)
        log.warning("attach_lookup_skipped", reason=why_not, names=len(unknown))
    return counts
