"""Whole-file structure of JPEG, PNG and WebP files, whitelist metadata stripping, and the proof that
a pass-through output is complete.

``inspect`` walks the container from start to end without decoding a pixel and answers: the stored size,
the EXIF orientation as Pillow reads it, whether the file could be uploaded as it is (``obstacles`` says
why not), which byte spans make up the picture without metadata, and which to hand to a decoder.

- JPEG: every segment and every scan's entropy-coded data up to the end-of-image marker (``jpeg``).
- PNG: every chunk up to IEND, each CRC verified (``zlib.crc32``, about 0.1 ms per MB).
- WebP: the RIFF length must not exceed the file and the chunks must tile it.

``stripped`` keeps only the whitelisted spans; ``prove`` then shows the output is a complete picture
(JPEG: walked again, same frame, nothing left to drop; PNG: the image data inflates to exactly the
size its header implies; WebP: it decodes). Structural damage raises ``Reject("corrupt", ...)``;
files that are not one of these three formats give ``None`` (Pillow decides what they are).
"""

from __future__ import annotations

import io
import zlib

from PIL import WebPImagePlugin

from pipeline.images.common import Header, Reject, merge_spans
from pipeline.images.jpeg import parse_jpeg
from pipeline.images.meta import icc_is_srgb, orientation

__all__ = ["Header", "fed", "inspect", "prove", "stripped"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks kept when stripping: only what shows the picture. Everything else (tEXt, zTXt, iTXt, eXIf, tIME,
# pHYs, private chunks, which may carry anything) is dropped: a whitelist is the only safe way to promise
# that no metadata leaves the machine. iCCP never passes (an sRGB or grey profile goes, untagged is sRGB).
_PNG_KEEP = frozenset({b"IHDR", b"IDAT", b"IEND", b"sRGB", b"gAMA", b"cHRM", b"cICP", b"sBIT"})
# Chunks a decoder may need for images that are re-encoded (palette, transparency, profile, animation).
_PNG_DECODE = _PNG_KEEP | {b"PLTE", b"tRNS", b"iCCP", b"acTL", b"fcTL", b"fdAT"}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_WEBP_KEEP = frozenset({b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF"})


def inspect(data: bytes) -> Header | None:
    """Walk ``data``; ``None`` if it is not JPEG, PNG or WebP. Raises ``Reject``."""
    if data[:3] == b"\xff\xd8\xff":
        header = parse_jpeg(data)
        return _with_orientation(header, orientation(data, "JPEG"))
    if data[:8] == _PNG_SIGNATURE:
        return _png(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        header = _webp(data)
        return _with_orientation(header, orientation(data, "WEBP"))
    return None


def _with_orientation(header: Header, value: int) -> Header:
    obstacles = header.obstacles + ((f"EXIF orientation {value}",) if value != 1 else ())
    return Header(header.format, header.width, header.height, obstacles, header.keep, header.feed, value)


def stripped(data: bytes, header: Header) -> bytes:
    """``data`` reduced to the spans that show the picture; ``data`` itself when nothing was dropped."""
    if header.format == "WEBP":
        return _webp_rebuild(data, header)
    if header.keep == ((0, len(data)),):
        return data
    return b"".join(data[a:b] for a, b in header.keep)


def fed(data: bytes, header: Header) -> bytes:
    """The bytes to hand to a decoder (see ``Header.feed``)."""
    if header.feed == ((0, len(data)),):
        return data
    if header.format == "WEBP":
        return data  # WebP is always fed whole: libwebp reads only the chunks it knows
    return b"".join(data[a:b] for a, b in header.feed)


def prove(out: bytes, header: Header, source: bytes | None = None) -> bool:
    """Raise ``Reject("corrupt")`` unless ``out`` (a pass-through output of a file with ``header``) is
    a complete picture of the same size; ``False`` when it is complete but carries bytes beyond what
    shows the picture (PNG image data with bytes after its zlib stream), which re-encoding removes.

    ``source`` is the file ``header`` was read from: when ``out`` is that very object (nothing was stripped)
    the walk is not repeated, since it would read the same bytes the same way (it is the costliest part: a
    scan of all the image data, ~1.3 ms per 2 MB, holding the GIL)."""
    again = header if out is source else inspect(out)
    if again is None or (again.format, again.width, again.height) != (header.format, header.width, header.height):
        raise Reject("corrupt", "the stripped file does not read back as the same picture")
    if header.format == "PNG":
        return _png_inflates(out, again)
    if header.format == "WEBP":
        try:
            with WebPImagePlugin.WebPImageFile(io.BytesIO(out)) as im:
                im.load()
        except Exception as exc:  # libwebp reports damage as several exception types
            raise Reject("corrupt", f"the WebP image data is damaged ({type(exc).__name__})") from None
    return True


def _png(data: bytes) -> Header:
    chunks, obstacles, ihdr, idat_runs = _png_chunks(data)
    if idat_runs != 1:  # decoders stop at the first non-IDAT chunk: split image data is broken data
        raise Reject("corrupt", "PNG has no image data" if not idat_runs else "PNG image data is split up")
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
    kinds = {c[0] for c in chunks}
    upload = _PNG_KEEP - ({b"gAMA", b"cHRM"} if b"iCCP" in kinds else set())  # the sRGB profile said it all
    keep = merge_spans([(0, 8), *((a, b) for k, a, b in chunks if k in upload)])
    feed = merge_spans([(0, 8), *((a, b) for k, a, b in chunks if k in _PNG_DECODE or not k[:1].islower())])
    value = orientation(data, "PNG", chunks)
    if value != 1:
        obstacles.append(f"EXIF orientation {value}")
    return Header("PNG", width, height, tuple(dict.fromkeys(obstacles)), keep, feed, value)


def _png_chunks(data: bytes) -> tuple[list[tuple[bytes, int, int]], list[str], bytes, int]:
    """Walk every chunk up to IEND, each CRC checked: ``(chunks as (kind, start, end), obstacles, the IHDR
    body, how many runs of IDAT chunks)``."""
    n = len(data)
    view = memoryview(data)
    pos = 8
    chunks: list[tuple[bytes, int, int]] = []
    obstacles: list[str] = []
    ihdr: bytes | None = None
    idat_runs = 0
    while True:
        if pos + 12 > n:
            raise Reject("corrupt", "PNG is truncated (no IEND chunk)")
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = bytes(data[pos + 4 : pos + 8])
        end = pos + 12 + length
        if end > n:
            raise Reject("corrupt", f"PNG is truncated inside a {kind.decode('latin-1')!r} chunk")
        if zlib.crc32(view[pos + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            raise Reject("corrupt", f"PNG chunk {kind.decode('latin-1')!r} fails its CRC check")
        if ihdr is None:
            if kind != b"IHDR" or length != 13:
                raise Reject("corrupt", "PNG does not start with an IHDR chunk")
            ihdr = data[pos + 8 : pos + 21]
        if kind == b"IDAT" and (not chunks or chunks[-1][0] != b"IDAT"):
            idat_runs += 1
        obstacles += _png_chunk_obstacles(kind, data, pos, end)
        chunks.append((kind, pos, end))
        pos = end
        if kind == b"IEND":
            return chunks, obstacles, ihdr, idat_runs


def _png_chunk_obstacles(kind: bytes, data: bytes, start: int, end: int) -> list[str]:
    """Why the chunk at ``start``..``end`` keeps the file from passing through as it is (empty if it does not).
    Only an iCCP body is sliced out: copying every IDAT would cost a copy of the image data."""
    if kind == b"tRNS":
        return ["transparency"]
    if kind == b"acTL":
        return ["animation (APNG)"]
    if kind == b"iCCP":
        return _png_icc(data[start + 8 : end - 4])
    if kind not in _PNG_DECODE and kind[:1].isupper():
        return [f"unknown critical chunk {kind.decode('latin-1')!r}"]
    return []


def _png_icc(body: bytes) -> list[str]:
    """Obstacles from an iCCP chunk body (name, NUL, method, zlib data)."""
    name_end = body.find(b"\x00")
    try:
        # A profile is tens of KB at most; the cap keeps a hostile chunk from inflating without bound.
        icc = zlib.decompressobj().decompress(body[name_end + 2 :], 4 << 20)
    except zlib.error:
        return ["an unreadable colour profile"]
    return [] if name_end > 0 and icc_is_srgb(icc) else ["a colour profile other than sRGB"]


def _png_inflates(out: bytes, header: Header) -> bool:
    """The IDAT stream must end and inflate to exactly the rows IHDR announces (else ``Reject``);
    ``False`` if bytes follow the end of the stream."""
    depth, colour, interlace = out[24], out[25], out[28]
    bits = depth * _PNG_CHANNELS[colour]

    def rows(w: int, h: int) -> int:
        return h * (1 + (w * bits + 7) // 8) if w and h else 0

    w, h = header.width, header.height
    expected = (
        sum(rows((w - x + dx - 1) // dx, (h - y + dy - 1) // dy) for x, y, dx, dy in _ADAM7)
        if interlace
        else rows(w, h)
    )
    inflater = zlib.decompressobj()
    total = 0
    pos = 8
    try:
        while pos < len(out):
            length = int.from_bytes(out[pos : pos + 4], "big")
            if out[pos + 4 : pos + 8] == b"IDAT":
                pending = out[pos + 8 : pos + 8 + length]
                while pending and total <= expected:  # bounded output: a zlib bomb cannot inflate freely
                    total += len(inflater.decompress(pending, 1 << 20))
                    pending = inflater.unconsumed_tail
            pos += 12 + length
    except zlib.error:
        raise Reject("corrupt", "PNG image data is damaged (zlib)") from None
    if not inflater.eof or total != expected:
        raise Reject("corrupt", f"PNG image data is incomplete ({total} of {expected} bytes)")
    return not inflater.unused_data


def _webp(data: bytes) -> Header:
    chunks = _webp_chunks(data)
    width, height, obstacles = _webp_size(data, chunks)
    for fourcc, a, b in chunks:
        if fourcc == b"VP8L" and (int.from_bytes(data[a + 9 : a + 13], "little") >> 28) & 1:
            obstacles.append("an alpha channel")
        elif fourcc == b"ICCP" and not icc_is_srgb(data[a + 8 : b]):
            obstacles.append("a colour profile other than sRGB")
    keep = tuple((a, b) for fourcc, a, b in chunks if fourcc in _WEBP_KEEP)
    return Header("WEBP", width, height, tuple(dict.fromkeys(obstacles)), keep, ((0, len(data)),))


def _webp_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """The chunks that tile the RIFF body, ``(fourcc, start, end with its padding)``; ``Reject`` if they do not."""
    total = int.from_bytes(data[4:8], "little") + 8
    if total > len(data):
        raise Reject("corrupt", f"WebP is truncated: its header says {total} bytes, the file has {len(data)}")
    pos = 12
    chunks: list[tuple[bytes, int, int]] = []  # fourcc, start, end (padded)
    while pos < total:
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        end = pos + 8 + size + (size & 1)
        if pos + 8 > total or pos + 8 + size > total:
            raise Reject("corrupt", "WebP is truncated or damaged (a chunk runs past the end)")
        chunks.append((data[pos : pos + 4], pos, min(end, total)))
        pos = end
    if not chunks:
        raise Reject("corrupt", "WebP has no chunks")
    return chunks


def _webp_size(data: bytes, chunks: list[tuple[bytes, int, int]]) -> tuple[int, int, list[str]]:
    """``(width, height, obstacles)`` from the first chunk (VP8X, VP8 or VP8L), which must say them."""
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
    return width, height, obstacles


def _webp_rebuild(data: bytes, header: Header) -> bytes:
    """Reassemble a WebP from its kept chunks, the VP8X flags saying no ICC/EXIF/XMP, the RIFF size fixed."""
    parts = [data[a:b] for a, b in header.keep]
    out_len = 4 + sum(len(p) for p in parts)
    if out_len + 8 == len(data) and int.from_bytes(data[4:8], "little") == out_len:
        return data  # nothing dropped, no trailing bytes
    if parts and parts[0][:4] == b"VP8X":
        vp8x = bytearray(parts[0])
        vp8x[8] &= ~0x2C & 0xFF  # 0x20 ICC profile, 0x08 EXIF, 0x04 XMP
        parts[0] = bytes(vp8x)
    return b"RIFF" + out_len.to_bytes(4, "little") + b"WEBP" + b"".join(parts)

