"""What a persons request must hold (the emulator's field rules, pure): text fields, the thumbnails list with its
primary rule, paging parameters, and the limits they are checked against. ``persons`` applies them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pipeline.emulator.handlers import mi_error

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_DESCRIPTION", "MAX_NAME", "MAX_PAGE_SIZE", "MAX_PER_PERSON", "MAX_PER_REQUEST",
           "NAME_QUERY_FORBIDDEN", "Wanted", "int_param", "text_field", "wanted_thumbnails"]

MAX_PER_REQUEST = 100
MAX_PER_PERSON = 100
MAX_NAME, MAX_DESCRIPTION, MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 50, 700, 1000, 10
NAME_QUERY_FORBIDDEN = (";", "|", "`")


@dataclass(frozen=True, slots=True)
class Wanted:
    """One item of a request's ``thumbnails``."""

    key: str
    primary: bool


def text_field(body: dict[str, Any], field: str, longest: int) -> str | web.Response | None:
    """An optional text field of 1..``longest`` characters, not blank; ``None`` when absent or null."""
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > longest:
        return mi_error(400, "10001", f"{field} must be text of 1 to {longest} characters, not blank.")
    return value


def wanted_thumbnails(body: dict[str, Any], *, create: bool) -> list[Wanted] | web.Response:
    """The request's ``thumbnails``: 1..100 distinct keys; exactly one primary on create, at most one else."""
    items = body.get("thumbnails")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_PER_REQUEST:
        return mi_error(400, "10001", f"thumbnails must be a list of 1 to {MAX_PER_REQUEST} items.")
    wanted: list[Wanted] = []
    for item in items:
        key = item.get("thumbnailKey") if isinstance(item, dict) else None
        primary = item.get("isPrimaryThumbnail", False) if isinstance(item, dict) else None
        if not isinstance(key, str) or not key or not isinstance(primary, bool):
            return mi_error(400, "10001", "Each thumbnail needs a thumbnailKey and a boolean isPrimaryThumbnail.")
        wanted.append(Wanted(key, primary))
    if len({w.key for w in wanted}) != len(wanted):
        return mi_error(400, "10001", "A thumbnailKey appears twice in thumbnails.")
    primaries = sum(w.primary for w in wanted)
    if (create and primaries != 1) or primaries > 1:
        return mi_error(400, "10001", "Exactly one thumbnail must be primary." if create
                        else "At most one thumbnail may be primary.")
    return wanted


def int_param(request: web.Request, name: str, default: int | None, low: int, high: int) -> int | web.Response:
    """A whole-number query parameter in ``low..high`` (``default`` when absent and given), or the 400."""
    raw = request.query.get(name)
    if raw is None and default is not None:
        return default
    if raw is None or not raw.isdigit() or not low <= int(raw) <= high:
        return mi_error(400, "10001", f"{name} must be a whole number from {low} to {high}.")
    return int(raw)
