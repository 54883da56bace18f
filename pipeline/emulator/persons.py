"""The persons API (``API.md`` section 3): register, add thumbnails, list by name, details, edit, delete.

Every route goes through ``handlers.api_call`` (signature, faults, quota, storms) under its own cap,
``EmulatorConfig.persons_rate`` calls per sliding 1 s window per access key. A key may be attached when it
was issued for this workspace, its object passes the status call's checks (COMPLETED), it is younger than
``thumbnail_ttl`` on the emulator's wall clock (``StoredObject.uploaded_at``; ``age_uploads`` moves that
back) and it was never attached before.

Choices where API.md is silent (clients must not depend on the codes):

- an unknown person id (or one of another workspace) answers HTTP 400 code ``"10404"`` "person not found":
  404 code ``"300"`` is the unknown *workspace*, which clients treat as fatal;
- a name already taken in the workspace: 400 code ``"10009"``;
- a key not uploaded, not COMPLETED or of another workspace: 400 ``"10002"``; expired: 400 ``"10003"``;
  already attached (also to a person since deleted: its thumbnails go with it): 400 ``"10004"``;
- more than 100 thumbnails for one person in all: 400 ``"10005"``; any other invalid field: 400 ``"10001"``;
- the list matches ``name`` as a case-sensitive substring, in id order; ``pageSize`` defaults to 10;
- DELETE answers ``{"code": "0", "message": "success"}`` with no ``result``;
- person ids count from 1001, thumbnail ids from 1; thumbnail URLs look presigned and are not served.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web

from pipeline.emulator import handlers
from pipeline.emulator.handlers import BUCKET, _json_body, _ok, _workspace, mi_error
from pipeline.emulator.persons_rules import (
    DEFAULT_PAGE_SIZE,
    MAX_DESCRIPTION,
    MAX_NAME,
    MAX_PAGE_SIZE,
    MAX_PER_PERSON,
    MAX_PER_REQUEST,
    NAME_QUERY_FORBIDDEN,
    Wanted,
    int_param,
    text_field,
    wanted_thumbnails,
)
from pipeline.emulator.state import Person, PersonThumbnail

if TYPE_CHECKING:
    from pipeline.emulator.server import Emulator

__all__ = ["MAX_PER_PERSON", "MAX_PER_REQUEST", "PERSONS_ROUTES", "add_routes", "age_uploads"]

_PERSONS = "/api/v1/workspaces/{workspace}/persons"
PERSONS_ROUTES = {
    "persons": _PERSONS,
    "person": _PERSONS + "/{person_id}",
    "person_thumbnail": _PERSONS + "/{person_id}/person-thumbnail",
}
def add_routes(emu: Emulator, app: web.Application) -> None:
    """Register the six persons routes on ``app`` (before the catch-all route)."""

    def call(route: str, handler: handlers.Handler) -> Any:
        return partial(handlers.api_call, emu, route=route, kind="persons", handler=handler)

    app.router.add_post(PERSONS_ROUTES["persons"], call("person_create", create))
    app.router.add_get(PERSONS_ROUTES["persons"], call("person_list", list_persons))
    app.router.add_get(PERSONS_ROUTES["person"], call("person_get", details))
    app.router.add_patch(PERSONS_ROUTES["person"], call("person_edit", edit))
    app.router.add_delete(PERSONS_ROUTES["person"], call("person_delete", delete))
    app.router.add_post(PERSONS_ROUTES["person_thumbnail"], call("person_add", add_thumbnails))


def age_uploads(emu: Emulator, seconds: float) -> None:
    """Make every stored upload ``seconds`` older, as if the wall clock had moved on, for key expiry only
    (signature timestamps and URL expiry keep following the wall clock)."""
    for obj in list(emu.objects.values()):
        obj.uploaded_at -= seconds


def _key_refused(emu: Emulator, workspace: str, key: str) -> web.Response | None:
    """Why ``key`` cannot be attached, or ``None`` when it can."""
    if handlers.verdict(emu, workspace, key) is not None:
        return mi_error(400, "10002", f"thumbnailKey {key} is not an uploaded, COMPLETED thumbnail of this workspace.")
    if key in emu.attached_keys:
        return mi_error(400, "10004", f"thumbnailKey {key} is already attached to a person.")
    if emu.wallclock() >= emu.objects[key].uploaded_at + emu.config.thumbnail_ttl:
        return mi_error(400, "10003", f"thumbnailKey {key} has expired.")
    return None


def _named(emu: Emulator, workspace: str, name: str) -> Person | None:
    return next((p for p in emu.persons.values() if p.workspace == workspace and p.name == name), None)


def _person(emu: Emulator, request: web.Request, workspace: str) -> Person | web.Response:
    raw = request.match_info["person_id"]
    person = emu.persons.get(int(raw)) if raw.isdigit() and len(raw) < 19 else None
    if person is None or person.workspace != workspace:
        return mi_error(400, "10404", "person not found")
    return person


def _attach(emu: Emulator, person: Person, wanted: list[Wanted]) -> None:
    for w in wanted:
        thumb = PersonThumbnail(next(emu.thumbnail_ids), w.key)
        person.thumbnails.append(thumb)
        emu.attached_keys[w.key] = person.id
        if w.primary:
            person.primary_id = thumb.id
    person.updated_at = emu.wallclock()


def _thumbnail_list(emu: Emulator, request: web.Request, person: Person) -> list[dict[str, Any]]:
    scheme, host = emu.storage_origin(request)
    return [
        {"id": t.id, "isPrimaryThumbnail": t.id == person.primary_id,
         "url": f"{scheme}://{host}/_storage/{BUCKET}/faces/{person.id}/{t.id}.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                f"&X-Amz-Expires=3600&X-Amz-Signature={secrets.token_hex(32)}"}
        for t in person.thumbnails
    ]


def _view(emu: Emulator, request: web.Request, person: Person, list_name: str) -> dict[str, Any]:
    return {
        "id": person.id, "personId": str(person.id), "name": person.name, "description": person.description,
        "tags": [], "thumbnailCount": len(person.thumbnails), list_name: _thumbnail_list(emu, request, person),
    }


async def _parsed(emu: Emulator, request: web.Request) -> tuple[str, dict[str, Any]] | web.Response:
    """(workspace, JSON body), or the error answer, checked in the service's order."""
    workspace = _workspace(emu, request)
    if isinstance(workspace, web.Response):
        return workspace
    body = await _json_body(request)
    return body if isinstance(body, web.Response) else (workspace, body)


@dataclass(frozen=True, slots=True)
class _Attach:
    """A create or add request that passed the rules both share (``_attach_request``)."""

    workspace: str
    person: Person | None
    name: str | None
    description: str | None
    wanted: list[Wanted]


async def _attach_request(emu: Emulator, request: web.Request, *, create: bool) -> _Attach | web.Response:
    """The rules create and add share, in the service's order (the first broken one is the answer): workspace
    and body; the person (add) or name and description (create); the keys (``_wanted``, ``_key_refused``)."""
    parsed = await _parsed(emu, request)
    if isinstance(parsed, web.Response):
        return parsed
    workspace, body = parsed
    person, name, description = None, None, None
    if create:
        name, description = text_field(body, "name", MAX_NAME), text_field(body, "description", MAX_DESCRIPTION)
    else:
        person = _person(emu, request, workspace)
    wanted = wanted_thumbnails(body, create=create)
    for answer in (person, name, description, wanted):
        if isinstance(answer, web.Response):
            return answer
    assert isinstance(wanted, list) and not isinstance(person, web.Response)
    assert not isinstance(name, web.Response) and not isinstance(description, web.Response)
    refusal = next((r for w in wanted if (r := _key_refused(emu, workspace, w.key)) is not None), None)
    if refusal is not None:
        return refusal
    return _Attach(workspace, person, name, description, wanted)


async def create(emu: Emulator, request: web.Request) -> web.Response:
    """Register a person with 1..100 thumbnails, exactly one primary; the name is unique in the workspace."""
    req = await _attach_request(emu, request, create=True)
    if isinstance(req, web.Response):
        return req
    if req.name is not None and _named(emu, req.workspace, req.name) is not None:
        return mi_error(400, "10009", f"A person named {req.name!r} already exists in this workspace.")
    now = emu.wallclock()
    person = Person(next(emu.person_ids), req.workspace, req.name, req.description, [], 0, now, now)
    emu.persons[person.id] = person
    _attach(emu, person, req.wanted)
    return _ok(_view(emu, request, person, "thumbnailList"))


async def add_thumbnails(emu: Emulator, request: web.Request) -> web.Response:
    """Attach 1..100 more keys to a person (100 in all at most); a key marked primary becomes the primary.
    Answers the person's final ``thumbnailList``."""
    req = await _attach_request(emu, request, create=False)
    if isinstance(req, web.Response):
        return req
    person = req.person
    assert person is not None
    if len(person.thumbnails) + len(req.wanted) > MAX_PER_PERSON:
        return mi_error(400, "10005", f"A person has at most {MAX_PER_PERSON} thumbnails; this one has "
                                      f"{len(person.thumbnails)}.")
    _attach(emu, person, req.wanted)
    return _ok({"id": person.id, "personId": str(person.id), "thumbnailList": _thumbnail_list(emu, request, person)})


async def list_persons(emu: Emulator, request: web.Request) -> web.Response:
    """One page of the workspace's persons, in id order, optionally those whose name contains ``name``."""
    workspace = _workspace(emu, request)
    if isinstance(workspace, web.Response):
        return workspace
    page = int_param(request, "pageNum", None, 1, 10**9)
    size = int_param(request, "pageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    if isinstance(page, web.Response):
        return page
    if isinstance(size, web.Response):
        return size
    name = request.query.get("name")
    if name is not None and (not 2 <= len(name) <= MAX_NAME or any(c in name for c in NAME_QUERY_FORBIDDEN)):
        return mi_error(400, "10001", f"name must be 2 to {MAX_NAME} characters without ; | or `.")
    found = sorted((p for p in emu.persons.values() if p.workspace == workspace
                    and (name is None or (p.name is not None and name in p.name))), key=lambda p: p.id)
    content = [{"id": p.id, "personId": str(p.id), "name": p.name, "description": p.description,
                "thumbnailCount": len(p.thumbnails)} for p in found[(page - 1) * size: page * size]]
    return _ok({"content": content, "totalCount": len(found), "totalPage": math.ceil(len(found) / size),
                "pageNo": page, "pageSize": size})


async def details(emu: Emulator, request: web.Request) -> web.Response:
    """A person's name, description, tags and thumbnails (ids and URLs: never the keys)."""
    workspace = _workspace(emu, request)
    if isinstance(workspace, web.Response):
        return workspace
    person = _person(emu, request, workspace)
    if isinstance(person, web.Response):
        return person
    return _ok(_view(emu, request, person, "thumbnails"))


async def edit(emu: Emulator, request: web.Request) -> web.Response:
    """Change ``name``, ``description`` or ``primaryThumbnailId`` (each optional); answers the details."""
    parsed = await _parsed(emu, request)
    if isinstance(parsed, web.Response):
        return parsed
    workspace, body = parsed
    person = _person(emu, request, workspace)
    if isinstance(person, web.Response):
        return person
    name, description = text_field(body, "name", MAX_NAME), text_field(body, "description", MAX_DESCRIPTION)
    if isinstance(name, web.Response):
        return name
    if isinstance(description, web.Response):
        return description
    if name is not None and (other := _named(emu, workspace, name)) is not None and other is not person:
        return mi_error(400, "10009", f"A person named {name!r} already exists in this workspace.")
    primary = body.get("primaryThumbnailId")
    if primary is not None:
        ids = {t.id for t in person.thumbnails}
        wanted_id = int(primary) if isinstance(primary, (int, str)) and str(primary).isdigit() else None
        if wanted_id not in ids:
            return mi_error(400, "10001", "primaryThumbnailId must be the id of one of this person's thumbnails.")
        person.primary_id = wanted_id
    person.name = name if name is not None else person.name
    person.description = description if description is not None else person.description
    person.updated_at = emu.wallclock()
    return _ok(_view(emu, request, person, "thumbnails"))


async def delete(emu: Emulator, request: web.Request) -> web.Response:
    """Delete a person; its keys stay used (they cannot be attached again)."""
    workspace = _workspace(emu, request)
    if isinstance(workspace, web.Response):
        return workspace
    person = _person(emu, request, workspace)
    if isinstance(person, web.Response):
        return person
    del emu.persons[person.id]
    return web.json_response({"code": "0", "message": "success"})
