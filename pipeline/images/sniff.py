"""Header-only inspection of JPEG, PNG and WebP files, and lossless metadata stripping.

``inspect`` walks the container structure without decoding a pixel and answers three questions:
the stored size, whether the file could be uploaded as it is (``obstacles`` lists why not), and which
byte spans to keep to drop metadata. With ``complete`` (JPEG only needs it) it catches truncation cheaply:

- JPEG: the segments up to the first scan must be complete, and an end-of-image marker (FFD9) must
  follow the scan data. Bytes after that marker (camera trailers, the extra pictures of an MPF file)
  are allowed but never uploaded: they are dropped when stripping.
- PNG: every chunk's CRC is verified (``zlib.crc32``, about 0.1 ms per MB) and IEND must be present.
- WebP: the RIFF length must not exceed the file, and the chunks must tile it.

Structural damage raises ``Reject("corrupt", ...)``; files that are not one of these three formats
return ``None`` (Pillow decides what they are).
"""

from __future__ import annotations

import zlib
from dataclasses import replace

from pipeline.images.common import Header, Reject, merge_spans
from pipeline.images.jpeg import jpeg_end, parse_jpeg
from pipeline.images.meta import exif_orientation, icc_is_srgb

__all__ = ["Header", "complete", "inspect", "stripped"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks kept when stripping: image data and colour interpretation. Everything else (tEXt, zTXt, iTXt,
# eXIf, tIME and unknown private chunks, which may carry anything) is dropped: a whitelist is the only
# safe way to promise that no metadata leaves the machine.
_PNG_KEEP = frozenset(
    {
        b"IHDR",
        b"PLTE",
        b"IDAT",
        b"IEND",
        b"tRNS",
        b"iCCP",
        b"sRGB",
        b"gAMA",
        b"cHRM",
        b"pHYs",
        b"sBIT",
        b"cICP",
    }
)
_WEBP_KEEP = frozenset({b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ICCP", b"ANIM", b"ANMF"})


def inspect(data: bytes) -> Header | None:
    """Parse ``data``'s headers; ``None`` if it is not JPEG, PNG or WebP. Raises ``Reject("corrupt")``."""
    if data[:3] == b"\xff\xd8\xff":
        return parse_jpeg(data)
    if data[:8] == _PNG_SIGNATURE:
        return _png(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    return None


def complete(data: bytes, header: Header) -> Header:
    """``header`` with the end of the image located; raises ``Reject("corrupt")`` if it is missing.

    Needed before ``stripped`` and before trusting a JPEG as complete (PNG and WebP were fully checked
    by ``inspect``).
    """
    if not header.keep or header.keep[-1][1] != -1:
        return header
    scan = header.keep[-1][0]
    return replace(header, keep=merge_spans([*header.keep[:-1], (scan, jpeg_end(data, scan))]))


def stripped(data: bytes, header: Header) -> bytes:
    """``data`` without its metadata (see ``Header.keep``); ``data`` itself when nothing was dropped.
    ``header`` must have been through ``complete``."""
    assert all(b >= 0 for _, b in header.keep), "call complete() first"
    if header.format == "WEBP":
        return _webp_rebuild(data, header)
    if header.keep == ((0, len(data)),):
        return data
    out = b"".join(data[a:b] for a, b in header.keep)
    return data if out == data else out


def _png(data: bytes) -> Header:
    n = len(data)
    view = memoryview(data)
    pos = 8
    keep: list[tuple[int, int]] = [(0, 8)]
    obstacles: list[str] = []
    ihdr: bytes | None = None
    saw_idat = False
    while True:
        if pos + 12 > n:
            raise Reject("corrupt", "PNG is truncated (no IEND chunk)")
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > n:
            raise Reject("corrupt", f"PNG is truncated inside a {kind.decode('latin-1')!r} chunk")
        if zlib.crc32(view[pos + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            raise Reject("corrupt", f"PNG chunk {kind.decode('latin-1')!r} fails its CRC check")
        if ihdr is None:
            if kind != b"IHDR" or length != 13:
                raise Reject("corrupt", "PNG does not start with an IHDR chunk")
            ihdr = data[pos + 8 : pos + 21]
        if kind == b"IDAT":
            saw_idat = True
        elif kind == b"tRNS":
            obstacles.append("transparency")
        elif kind == b"acTL":
            obstacles.append("animation (APNG)")
        elif kind == b"iCCP":
            obstacles.extend(_png_icc(data[pos + 8 : end - 4]))
        elif kind not in _PNG_KEEP and kind[:1].isupper():
            obstacles.append(f"unknown critical chunk {kind.decode('latin-1')!r}")
        if kind in _PNG_KEEP:
            keep.append((pos, end))
        pos = end
        if kind == b"IEND":
            break
    if not saw_idat:
        raise Reject("corrupt", "PNG has no image data (IDAT)")
    width, height = int.from_bytes(ihdr[0:4], "big"), int.from_bytes(ihdr[4:8], "big")
    depth, colour = ihdr[8], ihdr[9]
    if colour == 3:
        obstacles.append("a palette")
    elif colour in (4, 6):
        obstacles.append("an alpha channel")
    elif colour not in (0, 2):
        raise Reject("corrupt", f"PNG colour type {colour} does not exist")
    if depth != 8 and colour != 3:
        obstacles.append(f"{depth}-bit samples")
    return Header("PNG", width, height, tuple(obstacles), merge_spans(keep))


def _png_icc(body: bytes) -> list[str]:
    """Obstacles from an iCCP chunk body (name, NUL, method, zlib data)."""
    name_end = body.find(b"\x00")
    try:
        # A profile is tens of KB at most; the cap keeps a hostile chunk from inflating without bound.
        inflater = zlib.decompressobj()
        icc = inflater.decompress(body[name_end + 2 :], 4 << 20)
    except zlib.error:
        return ["an unreadable colour profile"]
    return [] if name_end > 0 and icc_is_srgb(icc) else ["a colour profile other than sRGB"]


def _webp(data: bytes) -> Header:
    total = int.from_bytes(data[4:8], "little") + 8
    if total > len(data):
        raise Reject("corrupt", f"WebP is truncated: its header says {total} bytes, the file has {len(data)}")
    pos = 12
    chunks: list[tuple[bytes, int, int]] = []  # fourcc, start, end (padded)
    while pos < total:
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        end = pos + 8 + size + (size & 1)
        if pos + 8 + size > total:
            raise Reject("corrupt", "WebP is truncated or damaged (a chunk runs past the end)")
        chunks.append((data[pos : pos + 4], pos, min(end, total)))
        pos = end
    if not chunks:
        raise Reject("corrupt", "WebP has no chunks")
    kinds = {c[0] for c in chunks}
    first, start, _ = chunks[0]
    body = data[start + 8 : start + 30]
    obstacles: list[str] = []
    if first == b"VP8X" and len(body) >= 10:
        flags = body[0]
        width = 1 + int.from_bytes(body[4:7], "little")
        height = 1 + int.from_bytes(body[7:10], "little")
        if flags & 0x10 or b"ALPH" in kinds:
            obstacles.append("an alpha channel")
        if flags & 0x02 or b"ANMF" in kinds:
            obstacles.append("animation")
    elif first == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":
        width = int.from_bytes(body[6:8], "little") & 0x3FFF
        height = int.from_bytes(body[8:10], "little") & 0x3FFF
    elif first == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:
        bits = int.from_bytes(body[1:5], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    else:
        raise Reject("corrupt", "WebP does not start with a VP8, VP8L or VP8X chunk")
    for fourcc, a, b in chunks:
        if fourcc == b"VP8L" and (int.from_bytes(data[a + 9 : a + 13], "little") >> 28) & 1:
            obstacles.append("an alpha channel")
        elif fourcc == b"EXIF" and (o := exif_orientation(data[a + 8 : b])) != 1:
            obstacles.append(f"EXIF orientation {o}")
        elif fourcc == b"ICCP" and not icc_is_srgb(data[a + 8 : b]):
            obstacles.append("a colour profile other than sRGB")
    keep = tuple((a, b) for fourcc, a, b in chunks if fourcc in _WEBP_KEEP)
    return Header("WEBP", width, height, tuple(dict.fromkeys(obstacles)), keep)


def _webp_rebuild(data: bytes, header: Header) -> bytes:
    """Reassemble a WebP from its kept chunks, clearing the VP8X EXIF/XMP flags and fixing the RIFF size."""
    parts = [data[a:b] for a, b in header.keep]
    out_len = 4 + sum(len(p) for p in parts)
    if out_len + 8 == len(data) and int.from_bytes(data[4:8], "little") == out_len:
        return data  # nothing dropped, no trailing bytes
    if parts and parts[0][:4] == b"VP8X":
        vp8x = bytearray(parts[0])
        vp8x[8] &= ~0x0C & 0xFF  # 0x08 EXIF present, 0x04 XMP present
        parts[0] = bytes(vp8x)
    return b"RIFF" + out_len.to_bytes(4, "little") + b"WEBP" + b"".join(parts)
