"""JPEG header walk (the segments up to the first scan) and the search for the image's end.

``parse_jpeg`` reads the frame header (size, precision, components), the EXIF orientation, the ICC
profile and the Adobe segment, and decides segment by segment what metadata stripping keeps: APP0 JFIF,
APP2 ICC_PROFILE, APP14 Adobe and every non-APP segment; APP1 (EXIF, XMP), APP13 (IPTC), COM, JFXX
thumbnails and other APPn are dropped. Nothing after the first scan's start is parsed here.
"""

from __future__ import annotations

from pipeline.images.common import Header, Reject, merge_spans
from pipeline.images.meta import exif_orientation, icc_is_srgb

__all__ = ["jpeg_end", "parse_jpeg"]

_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (C4/C8/CC are DHT/JPG/DAC)
_SOF_PLAIN = frozenset({0xC0, 0xC1, 0xC2})  # Huffman baseline/extended/progressive: what everyone decodes
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # markers without a length field


def parse_jpeg(data: bytes) -> Header:
    """The ``Header`` of a JPEG (``data`` starts with FFD8FF); raises ``Reject("corrupt")`` when the
    segments before the first scan are truncated or malformed. Its last ``keep`` span ends at -1."""
    n = len(data)
    pos = 2
    keep: list[tuple[int, int]] = [(0, 2)]
    frame: tuple[int, int, int, int, int] | None = None  # marker, precision, height, width, components
    orientation = 1
    icc: list[tuple[int, bytes]] = []
    while True:
        if pos >= n or data[pos] != 0xFF:
            raise Reject("corrupt", "JPEG header is truncated or damaged (no marker where one must be)")
        while pos < n and data[pos] == 0xFF:  # fill bytes may precede a marker
            pos += 1
        if pos >= n:
            raise Reject("corrupt", "JPEG file ends inside its header")
        marker, start = data[pos], pos - 1
        pos += 1
        if marker in _STANDALONE:
            keep.append((start, pos))
            continue
        if marker == 0xD9:
            raise Reject("corrupt", "JPEG file ends before any image data")
        length = int.from_bytes(data[pos : pos + 2], "big")
        end = pos + length
        if length < 2 or end > n:
            raise Reject("corrupt", "JPEG file is truncated inside its header")
        if marker == 0xDA:
            break
        body = data[pos + 2 : end]
        drop = False
        if marker in _SOF and len(body) >= 6:
            frame = (
                marker,
                body[0],
                int.from_bytes(body[1:3], "big"),
                int.from_bytes(body[3:5], "big"),
                body[5],
            )
        elif marker == 0xE0:
            drop = body.startswith(b"JFXX")  # extension segment: an embedded thumbnail, not needed
        elif marker == 0xE1:
            drop = True
            if body.startswith(b"Exif\x00\x00"):
                orientation = exif_orientation(body)
        elif marker == 0xE2:
            drop = not body.startswith(b"ICC_PROFILE\x00")
            if not drop and len(body) > 14:
                icc.append((body[12], body[14:]))
        elif 0xE3 <= marker <= 0xEF:
            drop = marker != 0xEE or not body.startswith(b"Adobe")  # APP14 Adobe says how to read colours
        elif marker == 0xFE:
            drop = True  # COM: free text, often "taken at..."
        if not drop:
            keep.append((start, end))
        pos = end
    if frame is None:
        raise Reject("corrupt", "JPEG has image data but no frame header")
    scan = pos - 2
    keep.append((scan, -1))  # -1: "to the end of the image", resolved by ``jpeg_end`` when needed
    marker, precision, height, width, components = frame
    obstacles: list[str] = []
    if marker not in _SOF_PLAIN:
        obstacles.append(f"JPEG coding SOF{marker - 0xC0} (lossless/arithmetic/hierarchical)")
    if precision != 8:
        obstacles.append(f"{precision}-bit JPEG")
    if components not in (1, 3):
        obstacles.append("CMYK/YCCK colours" if components == 4 else f"{components} colour components")
    if orientation != 1:
        obstacles.append(f"EXIF orientation {orientation}")
    if icc and components == 3 and not icc_is_srgb(b"".join(chunk for _, chunk in sorted(icc))):
        obstacles.append("a colour profile other than sRGB")
    if width == 0 or height == 0:
        obstacles.append("size given after the image data (DNL)")
    return Header("JPEG", width, height, tuple(obstacles), merge_spans(keep))


def jpeg_end(data: bytes, scan: int) -> int:
    """The offset just past the end-of-image marker of the picture whose first scan starts at ``scan``.

    Raises ``Reject("corrupt")`` when there is none (a truncated file). FFD9 cannot occur inside
    entropy-coded data (FF is always followed by 00 or a restart marker there), so the first FFD9 after
    the first scan ends the primary image. The search costs about 0.7 ms per MB and holds the GIL; it
    cannot be skipped when the file already ends with FFD9, because an appended picture (MPF previews,
    depth maps, cameras that concatenate) ends that way too and carries its own EXIF. ``parse_jpeg``
    leaves it out: only pass-through candidates need it (Pillow notices truncation when decoding).
    """
    found = data.find(b"\xff\xd9", scan)
    if found < 0:
        raise Reject("corrupt", "JPEG is truncated (no end-of-image marker)")
    return found + 2
