"""Metadata readers: the EXIF orientation as Pillow reads it, and ICC profile identity.

``orientation`` asks Pillow itself (its format plugin, instantiated directly on the bytes: no
``Image.open``, so no process-wide decompression-bomb check or plugin registry is involved), because
"upright" means what Pillow's ``exif_transpose`` and the viewers that agree with it show: for JPEG the
first EXIF segment before the first scan (later ones are appended to it), then XMP ``tiff:Orientation``;
for PNG the last ``eXIf`` chunk anywhere, else a "Raw profile type exif" text, else XMP; for WebP the
EXIF chunk libwebp's demuxer reports, else XMP.

The readers never raise on malformed input: they answer with the conservative value (orientation 1 =
"nothing to apply"; a profile that cannot be identified as sRGB is "not sRGB", which sends the image down
the decode-and-convert path where Pillow has the last word).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from typing import Literal

from PIL import JpegImagePlugin, PngImagePlugin, WebPImagePlugin

__all__ = ["exif_orientation", "icc_description", "icc_is_srgb", "orientation", "png_skeleton"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_META = frozenset({b"eXIf", b"tEXt", b"zTXt", b"iTXt"})


def orientation(data: bytes, fmt: str, png_chunks: Sequence[tuple[bytes, int, int]] = ()) -> int:
    """The EXIF orientation (1..8) Pillow applies to ``data`` (``fmt`` ``JPEG``, ``PNG`` or ``WEBP``);
    1 when there is none or Pillow cannot read it. For PNG, ``png_chunks`` lists the file's chunks
    (type, start, end), which are read through a one-pixel skeleton so that no pixel is decoded."""
    try:
        if fmt == "PNG":
            return _png_orientation(data, png_chunks)
        opener = JpegImagePlugin.JpegImageFile if fmt == "JPEG" else WebPImagePlugin.WebPImageFile
        with opener(io.BytesIO(data)) as im:
            return _valid(im.getexif().get(0x0112, 1))
    except Exception:  # Pillow cannot read the metadata: it shows the pixels as stored
        return 1


def _valid(value: object) -> int:
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _png_orientation(data: bytes, chunks: Sequence[tuple[bytes, int, int]]) -> int:
    try:
        return _png_skeleton_orientation(png_skeleton(data, chunks, _PNG_META))
    except ValueError:  # a text chunk over Pillow's limits: Pillow reads the eXIf chunks alone then
        return _png_skeleton_orientation(png_skeleton(data, chunks, frozenset({b"eXIf"})))


def _png_skeleton_orientation(skeleton: bytes) -> int:
    with PngImagePlugin.PngImageFile(io.BytesIO(skeleton)) as im:
        return _valid(im.getexif().get(0x0112, 1))


def png_skeleton(data: bytes, chunks: Sequence[tuple[bytes, int, int]], kinds: frozenset[bytes]) -> bytes:
    """A 1x1 grey PNG carrying ``data``'s chunks of the given ``kinds`` verbatim, before and after its
    image data as in ``data``: Pillow reads the metadata of it exactly as of the original."""
    ihdr = b"IHDR" + (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    idat = b"IDAT" + zlib.compress(b"\x00\x00")
    before: list[bytes] = []
    after: list[bytes] = []
    seen_idat = False
    for kind, start, end in chunks:
        seen_idat = seen_idat or kind == b"IDAT"
        if kind in kinds:
            (after if seen_idat else before).append(data[start:end])
    return b"".join(
        [_PNG_SIGNATURE, _chunk(ihdr), *before, _chunk(idat), *after, _chunk(b"IEND")]
    )


def _chunk(kind_and_body: bytes) -> bytes:
    return (
        (len(kind_and_body) - 4).to_bytes(4, "big")
        + kind_and_body
        + zlib.crc32(kind_and_body).to_bytes(4, "big")
    )


def exif_orientation(tiff: bytes) -> int:
    """The Orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block (``Exif\\0\\0`` prefix
    allowed), or 1 when absent, malformed or outside 1..8."""
    if tiff.startswith(b"Exif\x00\x00"):
        tiff = tiff[6:]
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    order: Literal["little", "big"] = "little" if tiff[:2] == b"II" else "big"
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return 1
    count = int.from_bytes(tiff[ifd : ifd + 2], order)
    for i in range(count):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(tiff):
            break
        if int.from_bytes(tiff[entry : entry + 2], order) == 0x0112:
            kind = int.from_bytes(tiff[entry + 2 : entry + 4], order)
            # SHORT (3) is the standard type; some writers use LONG (4). Both keep the value in the
            # first bytes of the value field.
            size = 2 if kind == 3 else 4
            value = int.from_bytes(tiff[entry + 8 : entry + 8 + size], order)
            return value if 1 <= value <= 8 else 1
    return 1


def icc_description(icc: bytes) -> str:
    """The profile's ``desc`` text (ICC v2 ``desc`` or v4 ``mluc``), or ``""`` if unreadable."""
    try:
        count = int.from_bytes(icc[128:132], "big")
        for i in range(min(count, 256)):
            entry = 132 + 12 * i
            if icc[entry : entry + 4] != b"desc":
                continue
            offset = int.from_bytes(icc[entry + 4 : entry + 8], "big")
            size = int.from_bytes(icc[entry + 8 : entry + 12], "big")
            tag = icc[offset : offset + size]
            if tag[:4] == b"desc":
                n = int.from_bytes(tag[8:12], "big")
                return tag[12 : 12 + n].split(b"\x00", 1)[0].decode("latin-1")
            if tag[:4] == b"mluc":
                length = int.from_bytes(tag[20:24], "big")
                start = int.from_bytes(tag[24:28], "big")
                return tag[start : start + length].decode("utf-16-be", "replace")
    except (IndexError, ValueError):
        pass
    return ""


def icc_is_srgb(icc: bytes) -> bool:
    """Whether pixels tagged with ``icc`` can be sent as they are (read as sRGB by everyone).

    True for sRGB profiles (recognised by their description, which is how sRGB variants from cameras,
    phones, Photoshop and LittleCMS all name themselves) and for greyscale profiles (single channel: a
    grey image stays grey whatever its gamma). False for anything else, e.g. Adobe RGB or Display P3.
    """
    if len(icc) < 132 or icc[36:40] != b"acsp":
        return False
    if icc[16:20] == b"GRAY":
        return True
    return icc[16:20] == b"RGB " and "srgb" in icc_description(icc).lower()
