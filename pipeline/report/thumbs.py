"""Small JPEG thumbnails of source photos for the page, made from pixels only, under a byte budget.

Sources are named like the manifest names them (``pipeline.fetch.SourceParser``): a relative path against the
root, an absolute path, a ``file://`` URL, or an ``s3://``, ``gs://``, ``http(s)://`` URL. The root is
``--root`` when given, else the results file's folder, and a local photo is read only when its real location
(symlinks resolved) lies inside it: ``../private``, an absolute path elsewhere, a ``file://`` URL elsewhere or a
symlink inside pointing outside are never opened. Remote photos are fetched only when asked
(``fetch=True``: ``--fetch-thumbnails``), through ``pipeline.fetch.Fetcher`` and its address rules, before the
page is rendered (``prefetch``). Under a remote root (an ``s3://``, ``gs://``, ``http(s)://`` prefix given as
text) relative paths are remote sources and local paths lie outside it.
Whatever cannot be shown becomes a ``Thumb`` with ``data=None`` and a short reason.
"""

from __future__ import annotations

import base64
import io
import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from pipeline.fetch.refs import Problem, SourceParser, SourceRef

__all__ = ["NOT_FETCHED", "SIDE", "Thumb", "ThumbMaker", "render_thumbnail"]

SIDE = 128
"""Longest side of a thumbnail, in pixels."""
NOT_FETCHED = "remote source, not fetched"
_QUALITY = 70
_MAX_SOURCE_BYTES = 200 * 1024 * 1024
_MAX_PIXELS = 100_000_000  # the image stage's own decompression-bomb limit
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_WHY = {"missing_path": "no path", "invalid_path": "invalid path", "unsupported_source": "unsupported source",
        "outside_root": "outside the root"}


@dataclass(frozen=True, slots=True)
class Thumb:
    """A thumbnail as a ``data:`` URI, or ``None`` with why it is not shown."""

    data: str | None
    why: str = ""


@dataclass(frozen=True, slots=True)
class Fetched:
    """A remote photo's thumbnails, upright and as stored (JPEG bytes), or why there are none."""

    upright: bytes | None
    stored: bytes | None
    why: str = ""


class ThumbMaker:
    """Makes thumbnails until ``budget`` bytes of them were embedded; after that, placeholders.

    ``root`` is the folder (or remote prefix) photos are read under. ``enabled=False`` makes every thumbnail
    a placeholder (for reports that are shared); ``fetch=True`` lets ``prefetch`` fetch remote photos.
    """

    def __init__(self, root: Path | str, *, enabled: bool = True, budget: int = 3_000_000,
                 fetch: bool = False) -> None:
        remote = isinstance(root, str) and _URL.match(root) is not None and not root.lower().startswith("file:")
        self.root_real = None if remote else os.path.realpath(root)
        self._parser = (SourceParser(base=None, root=str(root)) if remote
                        else SourceParser(base=str(Path(root).absolute()), root=None))
        self.enabled = enabled
        self.fetch = fetch
        self.budget = budget
        self.used = 0
        self.made = 0
        self.placeholders = 0
        self.fetched: dict[str, Fetched] = {}

    def source(self, text: str) -> Path | SourceRef | str:
        """The local file a path cell names (inside the root), the remote source it names, or why neither."""
        ref = self._parser(text)
        if isinstance(ref, Problem):
            return _WHY.get(ref.reason, ref.reason.replace("_", " "))
        if not ref.is_local:
            return ref
        real = os.path.realpath(ref.key)
        root = self.root_real
        if root is None or not (real == root or real.startswith(root.rstrip(os.sep) + os.sep)):
            return "outside the root"  # a symlink inside pointing out included: realpath followed it
        found = Path(real)  # the checked real location is what is opened
        try:
            return found if found.is_file() else "not found"
        except OSError:  # a name too long for the file system, a permission problem on a parent folder
            return "cannot be read"

    def remote_sources(self, texts: Iterable[str]) -> list[SourceRef]:
        """The distinct remote sources among ``texts``, in order (what ``prefetch`` would fetch)."""
        refs: dict[str, SourceRef] = {}
        for text in texts:
            found = self.source(text)
            if isinstance(found, SourceRef):
                refs.setdefault(found.url, found)
        return list(refs.values())

    def make(self, text: str, *, orient: bool = True) -> Thumb:
        """A thumbnail of the photo at ``text`` (EXIF orientation applied when ``orient``), or a placeholder."""
        if not self.enabled:
            return self._placeholder("photos left out")
        if self.used >= self.budget:
            return self._placeholder("left out to keep the page small")
        found = self.source(text)
        if isinstance(found, str):
            return self._placeholder(found)
        if isinstance(found, SourceRef):
            if not self.fetch:
                return self._placeholder(NOT_FETCHED)
            fetched = self.fetched.get(found.url)
            if fetched is None:
                return self._placeholder("left out to keep the page small")  # prefetch stopped at the budget
            data = fetched.upright if orient else fetched.stored
            if data is None:
                return self._placeholder(fetched.why or "cannot be decoded")
        else:
            data = render_thumbnail(found, orient)
            if data is None:
                return self._placeholder("cannot be decoded")
        uri = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        self.used += len(uri)
        self.made += 1
        return Thumb(uri)

    def _placeholder(self, why: str) -> Thumb:
        self.placeholders += 1
        return Thumb(None, why)


def render_thumbnail(source: Path | bytes, orient: bool) -> bytes | None:
    """JPEG bytes of a small copy of the image's pixels (no EXIF, ICC, XMP or comments), or ``None`` when
    ``source`` (a file or the bytes of one) is too big or cannot be decoded."""
    try:
        size = len(source) if isinstance(source, bytes) else source.stat().st_size
        if size > _MAX_SOURCE_BYTES:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # refuse, never decode a bomb
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
                if im.width * im.height > _MAX_PIXELS:
                    return None
                im.draft("RGB", (SIDE * 2, SIDE * 2))  # JPEG decodes at 1/2..1/8 scale: cheap for big photos
                shown = ImageOps.exif_transpose(im) if orient else im
                shown.thumbnail((SIDE, SIDE))
                rgb = _flatten(shown)
        # A fresh image from raw pixels carries no info dict: nothing but pixels can reach the page.
        clean = Image.frombytes("RGB", rgb.size, rgb.tobytes())
        out = io.BytesIO()
        clean.save(out, "JPEG", quality=_QUALITY, optimize=True)
        return out.getvalue()
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombWarning,
            Image.DecompressionBombError, MemoryError):
        return None


def _flatten(im: Image.Image) -> Image.Image:
    """RGB pixels; transparency composited on white, as a viewer shows it."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")
