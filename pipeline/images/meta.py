"""Small byte-level readers for metadata: EXIF orientation and ICC profile identity.

They never raise on malformed input: a reader that cannot make sense of the bytes answers with the
conservative value (orientation 1 = "nothing to apply"; a profile that cannot be identified as sRGB
is "not sRGB", which sends the image down the decode-and-convert path where Pillow has the last word).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["exif_orientation", "icc_description", "icc_is_srgb"]


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
