"""Opening a file with Pillow without touching process-wide state.

``Image.open`` checks the global ``Image.MAX_IMAGE_PIXELS`` (warning or raising through the global
warning filters) and only knows HEIF once an opener is registered for the whole process. ``open_image``
instead instantiates the plugin class of the format the magic bytes announce, from a whitelist; the
caller checks the size against its own policy before decoding a pixel.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pillow_heif
from PIL import (
    AvifImagePlugin,
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)
from pillow_heif.as_plugin import HeifImageFile

from pipeline.images.common import READABLE, Header, Reject, identify, is_text

__all__ = ["open_image"]

_OpenerT = Callable[[io.BytesIO], Image.Image]
_OPENERS: tuple[tuple[str, Callable[[bytes], bool], _OpenerT], ...] = (
    ("JPEG", lambda h: h[:3] == b"\xff\xd8\xff", JpegImagePlugin.JpegImageFile),
    ("PNG", lambda h: h[:8] == b"\x89PNG\r\n\x1a\n", PngImagePlugin.PngImageFile),
    ("WEBP", lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP", WebPImagePlugin.WebPImageFile),
    ("GIF", lambda h: h[:6] in (b"GIF87a", b"GIF89a"), GifImagePlugin.GifImageFile),
    ("TIFF", lambda h: h[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), TiffImagePlugin.TiffImageFile),
    ("BMP", lambda h: h[:2] == b"BM", BmpImagePlugin.BmpImageFile),
    ("AVIF", lambda h: h[4:8] == b"ftyp" and h[8:12] in (b"avif", b"avis"), AvifImagePlugin.AvifImageFile),
    ("HEIF", lambda h: bool(pillow_heif.is_supported(h)), HeifImageFile),
)
"""The formats ``prepare`` decodes, each recognised by its magic bytes and opened by its plugin class.
A whitelist, because some of Pillow's plugins (TGA, SPIDER...) accept almost any bytes and would
"decode" a text file into noise. (MPO needs no entry: JPEG's MPF pictures are never decoded.)"""


def open_image(data: bytes, header: Header | None = None) -> Image.Image:
    """``data`` opened (not decoded) by the plugin of the format its magic bytes announce, without
    ``Image.open``'s process-wide checks; raises ``Reject`` when no whitelisted format reads it."""
    head = data[:32]
    for _, accepts, opener in _OPENERS:
        if not accepts(head):
            continue
        try:
            return opener(io.BytesIO(data))
        except Image.DecompressionBombError as exc:  # WebP's plugin checks Pillow's own limit while opening
            raise Reject("too_many_pixels", f"refused by Pillow's decompression-bomb limit ({exc})") from None
        except Exception as exc:  # plugins raise many types for bytes they cannot read; try the next one
            if header and header.format == "JPEG" and any("JPEG coding" in o for o in header.obstacles):
                raise Reject("unsupported_format", f"a JPEG coding this tool cannot decode ({exc})") from None
    kind = identify(data)
    if kind in READABLE:
        raise Reject("corrupt", f"looks like {kind} but cannot be read (damaged or truncated)")
    if kind:
        raise Reject("unsupported_format", f"a {kind} file; the API takes JPEG, PNG or WebP")
    if is_text(data):
        raise Reject("unsupported_format", "a text file, not an image")
    raise Reject("unsupported_format", "not an image in any format this tool reads")
