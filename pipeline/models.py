"""The records the stages pass to each other. All frozen; no stage mutates another's output."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import TYPE_CHECKING, NamedTuple

from pipeline.fetch.refs import Problem, SourceRef

if TYPE_CHECKING:

    pass

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MIN_SIDE",
    "Credentials",
    "ExitCode",
    "ImagePolicy",
    "Prepared",
    "Presigned",
    "Rejected",
    "Row",
    "RowResult",
    "Status",
    "UploadCheck",
    "UploadOutcome",
]

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
"""The API's upload limit: 5 MB, read as 5 MiB (the stricter reading is 5,000,000; see ImagePolicy)."""

MIN_SIDE = 256
"""The API's minimum resolution, required on both sides."""


class ExitCode(IntEnum):
    """The process exit codes: one table shared by the CLI, the runner and the Python API."""

    OK = 0
    """Every row ended uploaded, attached, rejected or skipped."""
    FAILED = 1
    """Some rows failed (or the run stopped on a local problem such as a full disk); a re-run resumes."""
    USAGE = 2
    """Usage, manifest or configuration error: nothing was uploaded."""
    FATAL = 3
    """The run stopped on a fatal API answer (credentials, permission, workspace, quota, endpoint)."""
    BUSY = 75
    """Another run holds the journal (a cron run that finds last night's still going): nothing was done; try
    later (sysexits' EX_TEMPFAIL)."""
    INTERRUPTED = 130
    """Interrupted (Ctrl-C, SIGTERM, a kernel interrupt): state saved, a re-run resumes."""


class Status(str, Enum):
    """A row's state in the journal and in the results (terminal: uploaded, attached, rejected, failed,
    skipped)."""

    PENDING = "pending"
    PRESIGNED = "presigned"
    UPLOADED = "uploaded"
    ATTACHED = "attached"
    """Uploaded and attached to its person (``--attach``): the key no longer expires."""
    REJECTED = "rejected"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def terminal(self) -> bool:
        """Whether a re-run leaves this row alone (``failed`` is terminal but retried by default)."""
        return self in (Status.UPLOADED, Status.ATTACHED, Status.REJECTED, Status.FAILED, Status.SKIPPED)


@dataclass(frozen=True, slots=True)
class Credentials:
    """An NCP access key pair. ``secret_key`` is excluded from ``repr``."""

    access_key: str
    secret_key: str = field(repr=False)


class Row(NamedTuple):
    """One manifest row, as the reader hands it on (a named tuple: a million-row manifest builds a million, and
    a tuple costs a quarter of a frozen dataclass; change one with ``_replace``).

    ``index`` is the 0-based position in this read of the manifest; ``key`` the row key: the ``id`` column as
    text, else the path cell as written (``#row-<index>`` when a row has neither). ``ref`` is the one thing the
    path cell named, as ``fetch.SourceParser`` read it: a ``SourceRef`` (a local file, its checked path; or an
    object or web source) or a ``Problem`` (why it names no usable source). ``source``, ``remote`` and
    ``problem`` read it for the stages.
    """

    index: int  # type: ignore[assignment]  # the field hides tuple.index, which no caller uses on a Row
    key: str
    path: str
    ref: SourceRef | Problem
    file_name: str | None = None
    person: str | None = None
    """The person's name (``person`` column): rows with the same name are one person (``--attach``)."""
    person_id: str | None = None
    """An existing person's id (``person_id`` column): the row's key is added to that person."""
    primary: bool = False
    """The row is marked as its person's primary thumbnail (``primary`` column: true/1/yes)."""

    @property
    def source(self) -> str | None:
        """A local file's checked path as text (a ``Path`` is made only where the file is opened), else None."""
        ref = self.ref
        return ref.key if type(ref) is SourceRef and ref.scheme == "file" else None

    @property
    def remote(self) -> SourceRef | None:
        """A source in object storage or on the web (``s3://``, ``gs://``, ``http(s)://``): the fetch stage
        brings its bytes."""
        ref = self.ref
        return ref if type(ref) is SourceRef and ref.scheme != "file" else None

    @property
    def problem(self) -> tuple[str, str] | None:
        """``(reason, detail)`` when the path cell names no usable source."""
        ref = self.ref
        return (ref.reason, ref.detail) if type(ref) is Problem else None


@dataclass(frozen=True, slots=True)
class ImagePolicy:
    """What ``images.prepare`` must produce. Defaults are the API's documented rules."""

    max_bytes: int = 5_000_000
    """Largest upload. 5,000,000 rather than 5 MiB: the docs say "5 MB" and the stricter reading is safe."""
    min_side: int = MIN_SIDE
    max_side: int | None = None
    """Downscale so the long side is at most this (never upscale); ``None`` = only when needed to fit."""
    max_pixels: int = 100_000_000
    """Decompression-bomb guard: images with more pixels are rejected as ``too_many_pixels``."""
    max_input_bytes: int = 200 * 1024 * 1024
    """Source files larger than this are rejected (``too_large``) without being read."""
    jpeg_quality: int = 90
    keep_metadata: bool = False
    verify_pixels: bool = False
    """Decode pass-through candidates fully instead of the cheap structural check."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """An image ready to upload: ``data`` meets every API rule."""

    data: bytes = field(repr=False)
    format: str
    """``JPEG``, ``PNG`` or ``WEBP``."""
    content_type: str
    extension: str
    """File-name extension matching ``format``, with the dot (``.jpg``, ``.png``, ``.webp``)."""
    width: int
    height: int
    actions: tuple[str, ...]
    """Subset of ``passthrough``, ``reoriented``, ``converted``, ``resized``, ``stripped``, in that order."""
    source_bytes: int
    source_sha256: str

    @property
    def action(self) -> str:
        """The actions as the results column shows them (``reoriented+resized``)."""
        return "+".join(self.actions)


@dataclass(frozen=True, slots=True)
class Rejected:
    """An image that cannot be made acceptable; ``reason`` is a stable snake_case code."""

    reason: str
    detail: str
    source_bytes: int | None = None
    source_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class Presigned:
    """A one-time upload URL. ``url`` is a bearer credential: it is kept out of ``repr``."""

    thumbnail_key: str
    url: str = field(repr=False)
    expires_at: float
    """Epoch seconds after which the URL is no longer valid."""


@dataclass(frozen=True, slots=True)
class UploadCheck:
    """The answer of the upload-status call."""

    completed: bool
    message: str | None = None
    """``FILE_NOT_EXIST``, ``OVER_SIZE_LIMIT``, ``RESOLUTION_NOT_SUPPORT`` or another server string."""


@dataclass(frozen=True, slots=True)
class UploadOutcome:
    """What the client's whole presign -> PUT -> confirm sequence for one row came to.

    ``thumbnail_key`` is set when the row is uploaded (and confirmed, when confirmation is on); otherwise
    ``reason``/``detail`` say why it failed. ``orphans`` are keys presigned for this row whose upload did
    not end up being the one used (they may exist server-side until they expire).
    """

    thumbnail_key: str | None
    attempts: int
    reason: str | None = None
    detail: str | None = None
    orphans: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the row ended uploaded."""
        return self.thumbnail_key is not None and self.reason is None


@dataclass(frozen=True, slots=True)
class RowResult:
    """The final word on one row, as journaled and as written to the results."""

    index: int
    key: str
    status: Status
    thumbnail_key: str | None = None
    reason: str | None = None
    detail: str | None = None
    action: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    source_sha256: str | None = None
    attempts: int = 0
    uploaded_at: str | None = None
    """UTC ISO-8601 timestamp of the confirmed upload."""
    duplicate_of: str | None = None
    """Key of the first row with byte-identical source content, if any."""
    source_stamp: str | None = None
    """A cheap identity of the source's version (local: ``size:mtime_ns``): an unchanged stamp on a re-run
    means the content is unchanged and needs no hashing. Journal only, never in the results."""
    person_id: str | None = None
    """The person the key is attached to (``attached`` rows)."""
    attached_at: str | None = None
    """UTC ISO-8601 timestamp of the attach."""
    run_id: str | None = None
    """The run that last changed the row (``RunId``: UTC start time and a random suffix). Set by the journal."""
    this_run: str | None = None
    """What the run ``run_id`` did to the row (``THIS_RUN``); the results say ``unchanged`` for a row an earlier
    run last changed. Derived by the journal from the transition unless the writer names it."""
    source_path: str | None = None
    """The row's path cell as written when it was last worked on: a known key back with another file is a
    changed (or colliding) row. Journal only."""
