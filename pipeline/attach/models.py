"""The records the persons client takes and gives back (frozen: they cross from the client to the runner)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.reasons import PERSON_REFUSALS

__all__ = ["MAX_PER_CALL", "MAX_PER_PERSON", "NAME_MAX", "REFUSAL_REASONS", "PersonRef", "PersonState", "Refused",
           "Thumb"]

MAX_PER_CALL = 100
"""Most thumbnails in one create or add call (API.md section 3)."""
MAX_PER_PERSON = 100
"""Most thumbnails one person holds in all (API.md section 3: treat it as the limit)."""
NAME_MAX = 50
"""Longest person name the API accepts."""
REFUSAL_REASONS: tuple[str, ...] = PERSON_REFUSALS
"""What a ``Refused`` can say (``pipeline.reasons.PERSON_REFUSALS``)."""


@dataclass(frozen=True, slots=True)
class Thumb:
    """One key to attach; ``primary`` makes it the person's primary thumbnail."""

    key: str
    primary: bool = False

    def payload(self) -> dict[str, Any]:
        """The API's item: ``{"thumbnailKey": ..., "isPrimaryThumbnail": ...}``."""
        return {"thumbnailKey": self.key, "isPrimaryThumbnail": self.primary}


@dataclass(frozen=True, slots=True)
class PersonRef:
    """A person as created or listed: its id (text: the API gives a number or a string) and name."""

    id: str
    name: str | None


@dataclass(frozen=True, slots=True)
class PersonState:
    """What the API shows of a person: how many thumbnails it holds and which one is primary (a thumbnail
    id, ``None`` when none is). The keys themselves are never shown."""

    id: str
    count: int
    primary_id: str | None


@dataclass(frozen=True, slots=True)
class Refused:
    """A per-person answer that is not a success (not an exception: the run goes on).

    ``reason``: ``person_not_found`` (the id is unknown), ``name_exists`` (a create failed and the name is
    taken: ``person_id`` is that person, possibly created by an earlier try of the same call whose answer
    was lost -- reconcile by its ``state.count``), ``create_rejected``/``add_rejected``/``delete_rejected``
    (the API refused the call: a key expired or already attached, a full person...). ``detail`` is the API's
    answer, redacted; ``state`` the person's count and primary when they could be read.
    """

    reason: str
    detail: str
    person_id: str | None = None
    state: PersonState | None = None
