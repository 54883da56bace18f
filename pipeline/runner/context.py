"""``RunContext``: what every stage of one run shares, made once at start-up and never changed after; and the
records ``RunSession``'s steps hand each other (``Opened`` -> ``Started`` -> ``Worked``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipeline.config import Settings
from pipeline.journal import Journal
from pipeline.runner.control import RunControl
from pipeline.runner.recorder import Recorder

if TYPE_CHECKING:  # the stages' modules will import this one
    from pipeline.attach import AttachRow
    from pipeline.manifest import Manifest, ManifestInfo
    from pipeline.progress import Progress
    from pipeline.runner.attach_route import AttachRoute
    from pipeline.runner.attach_stage import AttachStage
    from pipeline.runner.paths import RunPaths
    from pipeline.runner.spill import Spill
    from pipeline.runner.stages import PlanStage
    from pipeline.runner.stats import RunStats

__all__ = ["Opened", "RunContext", "Started", "Worked"]


@dataclass(frozen=True, slots=True)
class RunContext:
    """One run's shared parts: its settings, the journal (the source of truth), the recorder (the one path
    from a finished row to the journal, the progress and the row logs), the control (stop, interrupt, fatal),
    the clock every wait and duration reads, and the run's id."""

    settings: Settings
    journal: Journal
    recorder: Recorder
    control: RunControl
    clock: Callable[[], float]
    run_id: str


@dataclass(frozen=True, slots=True)
class Opened:
    """The input, read as far as start-up needs: the manifest (scanned), where everything goes, and the URL
    folder relative paths join when the manifest came from object storage or the web."""

    manifest: Manifest
    info: ManifestInfo
    paths: RunPaths
    remote_base: str | None


@dataclass(frozen=True, slots=True)
class Started:
    """A run past start-up: its context, the spill the results are written from, the progress and stats, the
    rows a killed run left in flight (``redo``), and, with ``--attach``, every row's person."""

    ctx: RunContext
    spill: Spill
    progress: Progress
    stats: RunStats
    redo: int
    person_rows: list[AttachRow] | None


@dataclass(frozen=True, slots=True)
class Worked:
    """What the stages did, for the summary: the plan's counts, the attach route's and stage's (a real run
    with ``--attach``), or the dry run's attach plan."""

    plan: PlanStage | None = None
    route: AttachRoute | None = None
    attach: AttachStage | None = None
    dry_attach: dict[str, int] = field(default_factory=dict)
