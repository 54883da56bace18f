"""What the emulator remembers: issued URLs, stored objects, rate windows and counters."""

from __future__ import annotations

import io
import threading
import warnings
from array import array
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

__all__ = [
    "Counters",
    "ImageInfo",
    "IssuedUrl",
    "Person",
    "PersonThumbnail",
    "SlidingWindow",
    "StoredObject",
    "inspect_image",
]

# Pillow's format names for each extension the API accepts (MPO is how Pillow names many camera JPEGs).
FORMATS_BY_EXTENSION = {
    ".jpg": ("JPEG", "MPO"),
    ".jpeg": ("JPEG", "MPO"),
    ".png": ("PNG",),
    ".webp": ("WEBP",),
}
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


class SlidingWindow:
    """Counts events in a sliding window of ``length`` seconds (half-open: ``(now - length, now]``)."""

    def __init__(self, length: float) -> None:
        self.length = length
        self._times: deque[float] = deque()

    def count(self, now: float) -> int:
        """Events in the window ending at ``now`` (older events are forgotten)."""
        times = self._times
        while times and times[0] <= now - self.length:
            times.popleft()
        return len(times)

    def add(self, now: float) -> int:
        """Record one event at ``now``; return the count in the window including it."""
        self.count(now)
        self._times.append(now)
        return len(self._times)

    def frees_in(self, now: float) -> float:
        """Seconds from ``now`` until the oldest event in the window leaves it (0 if empty)."""
        if not self.count(now):
            return 0.0
        return max(0.0, self._times[0] + self.length - now)


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What a header-only Pillow open found: ``format`` is ``None`` when the bytes are not an image."""

    format: str | None
    width: int = 0
    height: int = 0


def inspect_image(data: bytes) -> ImageInfo:
    """Identify ``data`` from its header only (cheap: no pixel decoding).

    Never raises: bytes Pillow cannot identify give ``ImageInfo(None)``.
    """
    try:
        # Very large images trip Pillow's decompression-bomb warning, which the test suite turns into an
        # error; the emulator only reads the size, so that warning is irrelevant here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return ImageInfo(img.format, img.size[0], img.size[1])
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError):
        return ImageInfo(None)


@dataclass
class IssuedUrl:
    """One presigned URL as issued: the exact request target it must be used with, and its fate."""

    thumbnail_key: str
    workspace: str
    file_name: str
    target: str
    """Path and query exactly as issued; the PUT's raw target must equal it byte for byte."""
    host: str
    content_type: str
    expires_at: float
    """Epoch seconds."""
    used: bool = False


@dataclass
class StoredObject:
    """An uploaded object. ``data`` is kept in ``memory`` mode only; ``path`` is set in ``disk`` mode."""

    key: str
    file_name: str
    size: int
    sha256: str
    content_type: str
    uploaded_at: float
    """Epoch seconds."""
    etag: str
    info: ImageInfo
    data: bytes | None = field(default=None, repr=False)
    path: Path | None = None

    def read(self) -> bytes | None:
        """The stored bytes (from memory or disk), or ``None`` in ``hash`` mode."""
        if self.data is not None:
            return self.data
        if self.path is not None:
            return self.path.read_bytes()
        return None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view without the bytes."""
        return {
            "key": self.key,
            "file_name": self.file_name,
            "size": self.size,
            "sha256": self.sha256,
            "content_type": self.content_type,
            "uploaded_at": self.uploaded_at,
            "etag": self.etag,
            "format": self.info.format,
            "width": self.info.width,
            "height": self.info.height,
            "path": str(self.path) if self.path else None,
        }


@dataclass(frozen=True, slots=True)
class PersonThumbnail:
    """One thumbnail of a person: the id the API shows and the key it was attached with (never shown)."""

    id: int
    key: str


@dataclass
class Person:
    """A registered person. ``thumbnails`` in attach order; ``primary_id`` is one of their ids."""

    id: int
    workspace: str
    name: str | None
    description: str | None
    thumbnails: list[PersonThumbnail]
    primary_id: int
    created_at: float
    """Epoch seconds (the emulator's wall clock), as ``updated_at``."""
    updated_at: float

    @property
    def keys(self) -> list[str]:
        """The attached keys, in attach order."""
        return [t.key for t in self.thumbnails]

    @property
    def primary_key(self) -> str:
        """The key of the primary thumbnail."""
        return next(t.key for t in self.thumbnails if t.id == self.primary_id)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view for inspection (keys included: this is the emulator's side)."""
        return {
            "id": self.id, "workspace": self.workspace, "name": self.name, "description": self.description,
            "keys": self.keys, "primary_key": self.primary_key, "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


PERSON_ROUTES = ("person_create", "person_add", "person_list", "person_get", "person_edit", "person_delete")
"""Route names of the persons API; each is counted as ``<route>_calls``."""


class Counters:
    """Everything the emulator counts. Updates and ``snapshot()`` hold a lock, so another thread may read.

    ``presign_calls``/``status_calls``/``put_calls`` count every request to those routes (auth failures
    included); the ``max_*`` figures count every *authenticated* call that arrived, accepted or not, so
    they show what the client sent. ``puts_per_key`` counts PUT attempts per issued URL, keyed by its
    thumbnailKey (the URL's token is a credential and is not exposed).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls_by_route: Counter[str] = Counter()
        self.responses_by_status: Counter[int] = Counter()
        self.puts_per_key: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.presign_calls = 0
        self.status_calls = 0
        self.put_calls = 0
        self.puts_ok = 0
        self.urls_issued = 0
        self.responses_429 = 0
        self.max_presign_per_1s = 0
        self.max_status_per_60s = 0
        self.max_persons_per_1s = 0
        self.person_create_calls = self.person_add_calls = self.person_list_calls = 0
        self.person_get_calls = self.person_edit_calls = self.person_delete_calls = 0
        self.persons_arrivals = array("d")
        """The emulator clock's time of every authenticated persons-API call."""
        self.presign_arrivals = array("d")
        """The emulator clock's time (``time.monotonic()`` by default) of every authenticated presign call."""
        self._presign_seen = SlidingWindow(1.0)
        self._status_seen = SlidingWindow(60.0)
        self._persons_seen = SlidingWindow(1.0)

    @property
    def puts_per_token(self) -> Counter[str]:
        """Alias of ``puts_per_key``: one issued URL (token) per key."""
        return self.puts_per_key

    def call(self, route: str) -> None:
        """Count one request to ``route``."""
        with self._lock:
            self.calls_by_route[route] += 1
            if route.startswith("presign"):
                self.presign_calls += 1
            elif route.startswith("status"):
                self.status_calls += 1
            elif route == "put":
                self.put_calls += 1
            elif route in PERSON_ROUTES:
                setattr(self, f"{route}_calls", getattr(self, f"{route}_calls") + 1)

    def arrival(self, kind: str, now: float) -> None:
        """Record an authenticated ``presign``, ``status`` or ``persons`` call at ``now`` (monotonic seconds)."""
        with self._lock:
            if kind == "presign":
                self.presign_arrivals.append(now)
                self.max_presign_per_1s = max(self.max_presign_per_1s, self._presign_seen.add(now))
            elif kind == "persons":
                self.persons_arrivals.append(now)
                self.max_persons_per_1s = max(self.max_persons_per_1s, self._persons_seen.add(now))
            else:
                self.max_status_per_60s = max(self.max_status_per_60s, self._status_seen.add(now))

    def response(self, status: int) -> None:
        """Count one answer with HTTP ``status``."""
        with self._lock:
            self.responses_by_status[status] += 1
            if status == 429:
                self.responses_429 += 1

    def bump(self, name: str, n: int = 1) -> None:
        """Increment an integer attribute (``puts_ok``, ``urls_issued``) or a fault counter."""
        with self._lock:
            if name in ("puts_ok", "urls_issued"):
                setattr(self, name, getattr(self, name) + n)
            else:
                self.faults[name] += n

    def put_attempt(self, key: str) -> None:
        """Count one PUT that presented the URL issued for ``key``."""
        with self._lock:
            self.puts_per_key[key] += 1

    def snapshot(self, *, arrivals: bool = True) -> dict[str, Any]:
        """A consistent JSON-friendly copy (``presign_arrivals`` omitted when ``arrivals`` is false)."""
        with self._lock:
            snap: dict[str, Any] = {
                "calls_by_route": dict(self.calls_by_route),
                "presign_calls": self.presign_calls,
                "status_calls": self.status_calls,
                "put_calls": self.put_calls,
                "puts_ok": self.puts_ok,
                "urls_issued": self.urls_issued,
                "responses_429": self.responses_429,
                "responses_by_status": {str(k): v for k, v in sorted(self.responses_by_status.items())},
                "puts_per_key": dict(self.puts_per_key),
                "faults": dict(self.faults),
                "max_presign_per_1s": self.max_presign_per_1s,
                "max_status_per_60s": self.max_status_per_60s,
                "max_persons_per_1s": self.max_persons_per_1s,
                **{f"{route}_calls": getattr(self, f"{route}_calls") for route in PERSON_ROUTES},
            }
            if arrivals:
                snap["presign_arrivals"] = self.presign_arrivals.tolist()
                snap["persons_arrivals"] = self.persons_arrivals.tolist()
            return snap
