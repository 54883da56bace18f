"""``PersonsApi``: the persons calls of API.md section 3 (create, add, find by name, count, delete) on an
open ``ApiClient``, so they share its session, signature, first-call gate, fatal state and outage budget.

Person calls go through their own ``StrictLimiter`` at ``attach_rate`` (any 1 s window, evenly paced,
AIMD on 429 like presign). Fatal answers stop the whole client as they do for presign: 401/403 codes
200/210/230, 404 code 300 (the workspace), 429 code 400. Per-person problems come back as ``Refused``;
retries that run out (429, 5xx, timeouts past ``retry_window``) raise ``RateLimitedError``/
``TransientError`` as presign does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from pipeline.attach.models import MAX_PER_CALL, NAME_MAX, PersonRef, PersonState, Refused, Thumb
from pipeline.attach.settings import AttachSettings
from pipeline.client.aimd import AdaptiveRate
from pipeline.client.calls import ApiClientBase, Route
from pipeline.client.routes import Streak
from pipeline.errors import ApiError, FatalApiError, NotFoundError, RequestRejectedError, TransientError

__all__ = ["ATTACH_MARGIN", "LIST_PAGE_SIZE", "PersonsApi"]

ATTACH_MARGIN = 0.008
"""Seconds of headroom on the 1 s window, as for presign: the server counts arrivals, which lag sends."""
LIST_PAGE_SIZE = 1000
_QUERY_FORBIDDEN = (";", "|", "`")


def _classify(error: ApiError | FatalApiError) -> ApiError | FatalApiError:
    """404 code 300 is the workspace (fatal, as for presign); any other 404 is about one person."""
    if isinstance(error, RequestRejectedError) and error.status == 404 and error.code == "300":
        return NotFoundError(f"{error} (check the workspace name and the endpoint)", status=404, code="300")
    return error


def _text_id(doc: dict[str, Any]) -> str | None:
    """A person's id as text, from ``personId`` (newer pages) or ``id``."""
    for name in ("personId", "id"):
        value = doc.get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def _state(person_id: str, thumbnails: Any) -> PersonState:
    """A person's count and primary from a ``thumbnailList``/``thumbnails`` array."""
    items = [t for t in thumbnails if isinstance(t, dict)] if isinstance(thumbnails, list) else []
    primary = next((t for t in items if t.get("isPrimaryThumbnail") is True), None)
    primary_id = None if primary is None or primary.get("id") is None else str(primary["id"])
    return PersonState(person_id, len(items), primary_id)


class PersonsApi:
    """The persons calls on an open ``client`` (``async with ApiClient(...) as client``); ``page_size`` is
    the list call's page (1000, the API's largest, unless a test wants several pages)."""

    def __init__(self, client: ApiClientBase, settings: AttachSettings | None = None, *,
                 page_size: int = LIST_PAGE_SIZE) -> None:
        if not 1 <= page_size <= LIST_PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {LIST_PAGE_SIZE}.")
        self.client, self.page_size = client, page_size
        self.settings = settings = AttachSettings() if settings is None else settings
        self.limiter = client.new_limiter(settings.attach_rate, 1.0, margin=ATTACH_MARGIN)
        adaptive = AdaptiveRate(self.limiter, clock=client.clock) if client.settings.adaptive else None
        self.adaptive = adaptive
        self._base = settings.persons_path.replace("{workspace}", quote(client.settings.workspace, safe=""))

        streak = Streak()  # one limiter, so one streak of 429s for every persons call

        def route(kind: str, method: str, *, result_required: bool = True) -> Route:
            return Route(kind, method, self.limiter, adaptive, _classify, result_required, streak=streak)

        self._create, self._add = route("person_create", "POST"), route("person_add", "POST")
        self._list_route, self._get = route("person_list", "GET"), route("person_get", "GET")
        self._delete = route("person_delete", "DELETE", result_required=False)

    def _person_path(self, person_id: str, tail: str = "") -> str:
        return f"{self._base}/{quote(person_id, safe='')}{tail}"

    async def create(self, name: str | None, thumbnails: Sequence[Thumb]) -> PersonRef | Refused:
        """Register a person (``name`` ``None``: anonymous) with 1..100 ``thumbnails``, exactly one primary.

        A refusal of a named create is followed by a lookup of the name (its error code is not documented):
        if the name exists, ``Refused("name_exists", person_id=..., state=...)``; else ``create_rejected``.
        Raises ``ValueError`` for arguments the API would refuse whatever its state (a caller's bug).
        """
        if not 1 <= len(thumbnails) <= MAX_PER_CALL or sum(t.primary for t in thumbnails) != 1:
            raise ValueError(f"create takes 1 to {MAX_PER_CALL} thumbnails with exactly one primary.")
        if name is not None and (not name.strip() or len(name) > NAME_MAX):
            raise ValueError(f"A person's name is 1 to {NAME_MAX} characters, not blank.")
        payload: dict[str, Any] = {"thumbnails": [t.payload() for t in thumbnails]}
        if name is not None:
            payload["name"] = name
        try:
            result = await self.client.signed_call(self._create, self._base, payload)
        except RequestRejectedError as exc:
            found = await self.find_by_name(name) if name is not None else []
            if found:
                state = await self.count(found[0].id)
                return Refused("name_exists", f"a person named {name!r} exists ({exc})", found[0].id, state)
            return Refused("create_rejected", str(exc))
        person_id = _text_id(result)
        if person_id is None:
            raise TransientError("person_create: HTTP 200 without a person id")
        return PersonRef(person_id, name)

    async def add(self, person_id: str, thumbnails: Sequence[Thumb]) -> PersonState | Refused:
        """Attach 1..100 more ``thumbnails`` (at most one primary: it becomes the primary) to ``person_id``;
        the person's count and primary from the final list. A refusal is ``person_not_found`` when the
        person's details cannot be read either, else ``add_rejected`` with the person's state."""
        if not 1 <= len(thumbnails) <= MAX_PER_CALL or sum(t.primary for t in thumbnails) > 1:
            raise ValueError(f"add takes 1 to {MAX_PER_CALL} thumbnails with at most one primary.")
        payload = {"thumbnails": [t.payload() for t in thumbnails]}
        try:
            result = await self.client.signed_call(self._add, self._person_path(person_id, "/person-thumbnail"),
                                                   payload)
        except RequestRejectedError as exc:
            state = await self.count(person_id)
            if state is None:
                return Refused("person_not_found", f"person {person_id} not found ({exc})", person_id)
            return Refused("add_rejected", str(exc), person_id, state)
        return _state(person_id, result.get("thumbnailList"))

    async def find_by_name(self, name: str) -> list[PersonRef]:
        """Every person named exactly ``name`` (over all pages; the server may match partially). A name the
        list filter cannot take (1 character, or ``;``, ``|``, backtick) lists every person instead."""
        filtered = 2 <= len(name) <= NAME_MAX and not any(c in name for c in _QUERY_FORBIDDEN)
        return [p for p in await self._list(name if filtered else None) if p.name == name]

    async def list_all(self) -> list[PersonRef]:
        """Every person of the workspace (over all pages), named or not: one call per ``page_size`` persons."""
        return await self._list(None)

    async def _list(self, name: str | None) -> list[PersonRef]:
        found: list[PersonRef] = []
        page = 1
        while True:
            query: dict[str, Any] = {"pageNum": page, "pageSize": self.page_size}
            if name is not None:
                query["name"] = name
            path = f"{self._base}?{urlencode(query, quote_via=quote)}"
            result = await self.client.signed_call(self._list_route, path)
            content = result.get("content")
            items = [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []
            found.extend(PersonRef(pid, p["name"] if isinstance(p.get("name"), str) else None) for p in items
                         if (pid := _text_id(p)) is not None)
            total_pages = result.get("totalPage")
            last = total_pages if isinstance(total_pages, int) and not isinstance(total_pages, bool) else None
            if not items or len(items) < self.page_size or (last is not None and page >= last):
                return found
            page += 1

    async def count(self, person_id: str) -> PersonState | None:
        """The person's thumbnail count and primary (from its details), or ``None`` for an unknown id."""
        try:
            result = await self.client.signed_call(self._get, self._person_path(person_id))
        except RequestRejectedError:
            return None
        return _state(person_id, result.get("thumbnails"))

    async def delete(self, person_id: str) -> Refused | None:
        """Delete the person; ``None`` when done, else ``person_not_found`` or ``delete_rejected``."""
        try:
            await self.client.signed_call(self._delete, self._person_path(person_id))
        except RequestRejectedError as exc:
            if await self.count(person_id) is None:
                return Refused("person_not_found", f"person {person_id} not found ({exc})", person_id)
            return Refused("delete_rejected", str(exc), person_id)
        return None
