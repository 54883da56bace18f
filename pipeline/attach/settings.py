"""The attach stage's settings (issue 13): its rate, the per-person limit and how soon keys are attached.

Like ``ApiSettings``, every user-facing knob carries ``metadata={"help": ..., "unit": ...}``: the CLI
generates ``--attach-rate``, ``--person-max`` and ``--attach-within`` from them, with these defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pipeline.attach.models import MAX_PER_PERSON
from pipeline.client.settings import flag_name
from pipeline.errors import ConfigError

__all__ = ["DEFAULT_PERSONS_PATH", "AttachSettings"]

DEFAULT_PERSONS_PATH = "/api/v1/workspaces/{workspace}/persons"


@dataclass(frozen=True, slots=True)
class AttachSettings:
    """Knobs of the persons calls. Rates are calls per second; times are seconds."""

    attach_rate: float = field(default=10.0, metadata={
        "help": "person calls per second (create, add, list, details), never exceeded in any 1 s window; "
                "0 = unlimited", "unit": "calls/s"})
    person_max: int = field(default=100, metadata={
        "help": "most thumbnails one person may hold (1 to 100, the API's limit), counting what it already "
                "has; rows past it are rejected person_full before upload", "unit": "thumbnails"})
    attach_within: float = field(default=600.0, metadata={
        "help": "longest time from a key's upload to its attach while the run is alive", "unit": "s"})
    persons_path: str = field(default=DEFAULT_PERSONS_PATH, metadata={
        "help": "URI template of the persons calls ({workspace} is replaced)", "unit": ""})

    def __post_init__(self) -> None:
        if not math.isfinite(self.attach_rate) or self.attach_rate < 0:
            raise ConfigError(f"{flag_name('attach_rate')} must be zero (unlimited) or positive; "
                              f"got {self.attach_rate}.")
        if not 1 <= self.person_max <= MAX_PER_PERSON:
            raise ConfigError(f"{flag_name('person_max')} must be 1 to {MAX_PER_PERSON} (the API holds at most "
                              f"{MAX_PER_PERSON} thumbnails per person); got {self.person_max}.")
        if not math.isfinite(self.attach_within) or self.attach_within <= 0:
            raise ConfigError(f"{flag_name('attach_within')} must be a positive number of seconds; "
                              f"got {self.attach_within}.")
        if not self.persons_path.startswith("/") or "{workspace}" not in self.persons_path:
            raise ConfigError(f"{flag_name('persons_path')} must start with '/' and contain '{{workspace}}'; "
                              f"got {self.persons_path!r}.")
