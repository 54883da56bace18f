"""Small JPEG thumbnails of source photos for the page, made from pixels only, under a byte budget.

Sources are found like the manifest finds them: a relative path against the base folder (the ``root`` when
given, else the results file's folder), an absolute path, or a ``file://`` URL. With a root, a path whose real
location lies outside it is never opened. Remote sources (``s3://``, ``https://``, ...) are never fetched, and
neither is anything under a remote root (an ``s3://``, ``gs://``, ``http(s)://`` prefix given as text): its
relative paths are remote sources, and local paths lie outside it.
Whatever cannot be shown becomes a ``Thumb`` with ``data=None`` and a short reason for the placeholder.
"""

from __future__ import annotations

import base64
import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from PIL import Image, ImageOps

__all__ = ["Thumb", "ThumbMaker"]

SIDE = 128
"""Longest side of a thumbnail, in pixels."""
_QUALITY = 70
_MAX_SOURCE_BYTES = 200 * 1024 * 1024
_MAX_PIXELS = 100_000_000  # the image stage's own decompression-bomb limit
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True, slots=True)
class Thumb:
    """A thumbnail as a ``data:`` URI, or ``None`` with why it is not shown."""

    data: str | None
    why: str = ""


class ThumbMaker:
    """Makes thumbnails until ``budget`` bytes of them were embedded; after that, placeholders.

    ``enabled=False`` makes every thumbnail a placeholder (for reports that are shared).
    """

    def __init__(self, base: Path | str, root: Path | str | None, *, enabled: bool = True,
                 budget: int = 3_000_000) -> None:
        self.remote_root = root if isinstance(root, str) and _URL.match(root) else None
        self.base = str(Path(base).absolute()) if self.remote_root is None else ""
        self.root = os.path.realpath(root) if root is not None and self.remote_root is None else None
        self.enabled = enabled
        self.budget = budget
        self.used = 0
        self.made = 0
        self.placeholders = 0

    def source(self, text: str) -> Path | str:
        """The local file a path cell names, or why it cannot be shown."""
        if not text or text.isspace():
            return "no path"
        if "\x00" in text:
            return "invalid path"
        if _URL.match(text):
            parsed = urlparse(text)
            if parsed.scheme.lower() != "file":
                return "remote source, not fetched"
            text = unquote(parsed.path)
        elif self.remote_root is not None and not text.startswith(os.sep):
            return "remote source, not fetched"  # it lies under the remote root
        if self.remote_root is not None:
            return "outside the root"
        real = os.path.realpath(os.path.join(self.base, text))  # noqa: PTH118  # an absolute cell replaces base
        if self.root is not None and not (real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep)):
            return "outside the root"
        found = Path(real)
        try:
            return found if found.is_file() else "not found"
        except OSError:  # a name too long for the file system, a permission problem on a parent folder
            return "cannot be read"

    def make(self, text: str, *, orient: bool = True) -> Thumb:
        """A thumbnail of the photo at ``text`` (EXIF orientation applied when ``orient``), or a placeholder."""
        if not self.enabled:
            return self._placeholder("photos left out")
        if self.used >= self.budget:
            return self._placeholder("left out to keep the page small")
        found = self.source(text)
        if isinstance(found, str):
            return self._placeholder(found)
        data = _render(found, orient)
        if data is None:
            return self._placeholder("cannot be decoded")
        uri = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        self.used += len(uri)
        self.made += 1
        return Thumb(uri)

    def _placeholder(self, why: str) -> Thumb:
        self.placeholders += 1
        return Thumb(None, why)


def _render(path: Path, orient: bool) -> bytes | None:
    """JPEG bytes of a small copy of the image's pixels (no EXIF, ICC, XMP or comments), or ``None``."""
    try:
        if path.stat().st_size > _MAX_SOURCE_BYTES:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # refuse, never decode a bomb
            with Image.open(path) as im:
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
