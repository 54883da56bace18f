"""JPEG structure: a walk of every segment and every scan's entropy-coded data, start to end of image.

``parse_jpeg`` reads the whole file the way a decoder does: segment by segment up to each start of
scan, then through the scan's entropy-coded data (where FF is only ever followed by 00 or a restart
marker) to the next marker, until the end-of-image marker that follows at least one scan. A file that
stops earlier is truncated (``Reject("corrupt")``); a byte pattern is never searched for, so an FFD9
inside a comment or an EXIF block cannot end the picture early.

Stripping is a whitelist: what a decoder needs to show the picture (frame, Huffman and quantisation
tables, restart interval, scans and their data, DNL, the end marker) plus two fixed-size segments that
carry only numbers (a plain 16-byte JFIF APP0 without thumbnail, a plain 14-byte Adobe APP14, whose
transform flag says how to read the colours). Every other segment goes, wherever it sits: APPn (EXIF,
XMP, ICC, IPTC, MPF, non-JFIF APP0...), COM, and anything after the end-of-image marker.
"""

from __future__ import annotations

import re

from pipeline.images.common import Header, Reject, merge_spans
from pipeline.images.meta import icc_is_srgb

__all__ = ["parse_jpeg"]

_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (C4/C8/CC are DHT/JPG/DAC)
_SOF_PLAIN = frozenset({0xC0, 0xC1, 0xC2})  # Huffman baseline/extended/progressive: what everyone decodes
_RST = frozenset(range(0xD0, 0xD8))
_TABLES = frozenset({0xC4, 0xDB, 0xDD, 0xCC})  # DHT, DQT, DRI, DAC: needed to decode the scans
_DNL = 0xDC
# Inside entropy-coded data an FF is followed by 00 (a stuffed FF byte) or a restart marker D0-D7;
# any other byte after FF (including FF, a fill byte) is the start of the next marker segment.
_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def parse_jpeg(data: bytes) -> Header:
    """The ``Header`` of a complete JPEG (``data`` starts with FFD8FF), its ``keep`` spans being the
    whitelisted segments, scans and the end marker (never the bytes after it).

    Raises ``Reject("corrupt")`` for a truncated or malformed structure and
    ``Reject("unsupported_format")`` for sample precisions other than 8 bits, which no decoder we use
    reads. Obstacles to passing the bytes through: non-Huffman or hierarchical coding, colour spaces
    other than grey/YCbCr, a colour profile other than sRGB, more than one frame, odd JFIF/Adobe
    segments (dropping them would change how the picture reads). EXIF orientation is not judged here
    (``meta.orientation`` reads it as Pillow does).
    """
    walk = _Walk(data)
    pos = 2
    while True:
        marker, start, pos = _next_marker(data, pos, walk.obstacles)
        if marker == 0xD9:
            if not walk.scans:
                raise Reject("corrupt", "JPEG file ends before any image data")
            walk.keep.append((start, pos))
            return walk.header()
        if marker in _RST or marker == 0x01:  # stray standalone markers carry nothing: dropped
            continue
        if marker == 0xD8 or marker == 0x00:
            raise Reject("corrupt", "JPEG structure is damaged (unexpected marker)")
        length = int.from_bytes(data[pos : pos + 2], "big")
        end = pos + length
        if length < 2 or end > len(data):
            raise Reject("corrupt", "JPEG is truncated inside a segment")
        body = data[pos + 2 : end]
        if marker == 0xDA:
            pos = walk.scan(start, end, body)
        else:
            walk.segment(marker, start, end, body)
            pos = end


def _next_marker(data: bytes, pos: int, obstacles: list[str]) -> tuple[int, int, int]:
    """``(marker, where its FF is, the position after it)`` of the next marker at or after ``pos``.

    Junk before it is skipped as decoders do (an obstacle: it is not kept), and so are fill bytes."""
    n = len(data)
    if pos >= n:
        raise Reject("corrupt", "JPEG is truncated (no end-of-image marker)")
    if data[pos] != 0xFF:  # junk between segments: decoders skip to the next marker, and so do we
        pos = data.find(b"\xff", pos)
        if pos < 0:
            raise Reject("corrupt", "JPEG is truncated (no end-of-image marker)")
        obstacles.append("stray bytes between segments")
    while pos < n and data[pos] == 0xFF:  # fill bytes may precede a marker; they are not kept
        pos += 1
    if pos >= n:
        raise Reject("corrupt", "JPEG is truncated (it ends in fill bytes)")
    return data[pos], pos - 1, pos + 1


class _Walk:
    """What the walk has seen so far: the spans to keep, the frame, the scans and the obstacles."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.keep: list[tuple[int, int]] = [(0, 2)]
        self.frame: tuple[int, int, int, int, bytes] | None = None  # marker, precision, height, width, ids
        self.scanned: set[int] = set()
        """Component ids some scan covers."""
        self.scans = 0
        self.obstacles: list[str] = []
        self.icc: list[tuple[int, bytes]] = []
        """ICC profile chunks, ``(sequence number, bytes)``."""
        self.seen_jfif = False
        self.seen_adobe = False

    def scan(self, start: int, end: int, body: bytes) -> int:
        """Keep a scan (header at ``start``..``end``) and its entropy-coded data; the position of the marker
        that ends the data."""
        if self.frame is None:
            raise Reject("corrupt", "JPEG has image data but no frame header")
        count = body[0] if body else 0
        if count == 0 or len(body) < 1 + 2 * count:
            raise Reject("corrupt", "JPEG scan header is damaged")
        if len(body) != 4 + 2 * count:
            self.obstacles.append("a scan header with extra bytes")
        self.scanned.update(body[1 : 1 + 2 * count : 2])
        found = _MARKER_IN_SCAN.search(self.data, end)
        if found is None:
            raise Reject("corrupt", "JPEG is truncated inside its image data")
        self.keep.append((start, found.start()))
        self.scans += 1
        return found.start()

    def segment(self, marker: int, start: int, end: int, body: bytes) -> None:
        """Judge one marker segment other than a scan: keep it, read it, or let it go."""
        if marker in _SOF:
            self.frame_header(marker, body)
            self.keep.append((start, end))
        elif marker in _TABLES or marker == _DNL:
            if not _exact(marker, body):  # tables padded with extra bytes could carry anything
                self.obstacles.append("a table segment with extra bytes")
            self.keep.append((start, end))
        elif 0xE0 <= marker <= 0xEF:
            self.application(marker, start, end, body)
        elif 0xF0 <= marker <= 0xFD and self.frame is None:
            raise Reject("unsupported_format", "a JPEG-LS or JPEG extension file; the API takes baseline JPEG")

    def application(self, marker: int, start: int, end: int, body: bytes) -> None:
        """An APPn segment: a plain JFIF or Adobe one is kept, an ICC profile read; the rest goes."""
        if marker == 0xE0 and body.startswith(b"JFIF\x00"):
            # Kept only in its plain form (no thumbnail): 14 bytes of version and density, no payload.
            if not self.seen_jfif and not self.scans and len(body) == 14 and body[12:14] == b"\x00\x00":
                self.keep.append((start, end))
            self.seen_jfif = True
        elif marker == 0xEE and body.startswith(b"Adobe"):
            if self.seen_adobe or self.scans or len(body) != 12:  # the plain segment: 14 bytes with its length
                self.obstacles.append("an unusual Adobe segment")
            else:
                self.keep.append((start, end))
            self.seen_adobe = True
        elif marker == 0xE2 and body.startswith(b"ICC_PROFILE\x00") and not self.scans and len(body) > 14:
            self.icc.append((body[12], body[14:]))  # read as Pillow does (before the first scan), never kept

    def frame_header(self, marker: int, body: bytes) -> None:
        """Read a frame header (SOFn); a second one is an obstacle, not a frame."""
        if self.frame is not None:
            self.obstacles.append("more than one frame")
            return
        if len(body) < 6 or len(body) < 6 + 3 * body[5]:
            raise Reject("corrupt", "JPEG frame header is damaged")
        if len(body) != 6 + 3 * body[5]:
            self.obstacles.append("a frame header with extra bytes")
        ids = bytes(body[6 + 3 * i] for i in range(body[5]))
        self.frame = (marker, body[0], int.from_bytes(body[1:3], "big"), int.from_bytes(body[3:5], "big"), ids)

    def header(self) -> Header:
        """The ``Header`` of a walk that reached the end-of-image marker, judging the frame it found."""
        if self.frame is None:
            raise Reject("corrupt", "JPEG has no frame header")
        marker, precision, height, width, ids = self.frame
        if precision != 8:
            raise Reject("unsupported_format", f"a {precision}-bit JPEG; only 8-bit JPEGs can be read")
        if not set(ids) <= self.scanned:
            raise Reject("corrupt", "JPEG is incomplete (a colour component has no image data)")
        obstacles = self.obstacles
        if marker not in _SOF_PLAIN:
            obstacles.append(f"JPEG coding SOF{marker - 0xC0} (lossless/arithmetic/hierarchical)")
        if len(ids) not in (1, 3):
            obstacles.append("CMYK/YCCK colours" if len(ids) == 4 else f"{len(ids)} colour components")
        if self.icc and len(ids) == 3 and not icc_is_srgb(b"".join(chunk for _, chunk in sorted(self.icc))):
            obstacles.append("a colour profile other than sRGB")
        if width == 0 or height == 0:
            obstacles.append("size given after the image data (DNL)")
        return Header("JPEG", width, height, tuple(dict.fromkeys(obstacles)), merge_spans(self.keep),
                      ((0, len(self.data)),))


def _exact(marker: int, body: bytes) -> bool:
    """Whether a table segment's body is exactly its tables, with no bytes to spare."""
    if marker == 0xDB:  # DQT: (precision/id, 64 one- or two-byte values)...
        pos = 0
        while pos < len(body):
            pos += 1 + 64 * (1 + (body[pos] >> 4))
        return pos == len(body)
    if marker == 0xC4:  # DHT: (class/id, 16 counts, the symbols)...
        pos = 0
        while pos + 17 <= len(body):
            pos += 17 + sum(body[pos + 1 : pos + 17])
        return pos == len(body)
    if marker == 0xCC:  # DAC: (class/id, value) pairs
        return len(body) % 2 == 0
    return len(body) == 2  # DRI, DNL
