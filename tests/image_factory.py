"""Builders of hostile image files for the image-stage tests: metadata hidden where a header walk does
not look, end markers inside comments, disagreeing EXIF blocks, oversized text chunks, truncations.

Every picture is an upright reference (a texture with a red block in its top-left corner, ``marked``)
stored transformed for its EXIF orientation, so a correct reader shows the red block top-left. Every
piece of metadata carries one of ``MARKERS``, which must never reach an output.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field

from PIL import Image, ImageCms, ImageDraw

from pipeline.samples import RED, STORE, texture

GPS_TEXT = b"GPS-HIDDEN-37.5665N"
CAMERA_MAKE = "CamMakerHostile"
XMP_TEXT = b"XMP-HIDDEN-PAYLOAD"
COMMENT_TEXT = b"COMMENT-HIDDEN-TEXT"
APP_TEXT = b"APPN-HIDDEN-LOCATION"
PNG_TEXT = b"PNG-TEXT-HIDDEN"
TRAILER_TEXT = b"TRAILER-HIDDEN-BYTES"
ICC_TEXT = b"ICCNAME-HIDDEN"
MARKERS: tuple[bytes, ...] = (
    GPS_TEXT,
    CAMERA_MAKE.encode(),
    XMP_TEXT,
    COMMENT_TEXT,
    APP_TEXT,
    PNG_TEXT,
    TRAILER_TEXT,
    ICC_TEXT,
)
"""Planted in metadata only: none of them may occur in a prepared output."""



@dataclass(frozen=True)
class Case:
    """One hostile file and what ``prepare`` must make of it."""

    name: str
    data: bytes = field(repr=False)
    expect: str
    """``prepared`` or a rejection reason."""
    size: tuple[int, int] = (0, 0)
    """The upright size a prepared output must have (a red block top-left), when ``expect`` is ``prepared``."""


def marked(width: int, height: int, seed: int = 0) -> Image.Image:
    """The upright reference picture: a texture with a red block in its top-left quarter."""
    img = texture(width, height, seed=seed)
    ImageDraw.Draw(img).rectangle((0, 0, width // 4, height // 4), fill=RED)
    return img


def stored(width: int, height: int, orientation: int, seed: int = 0) -> Image.Image:
    """The pixels to store so that orientation ``orientation`` shows ``marked(width, height)``."""
    method = STORE[orientation]
    upright = marked(width, height, seed)
    return upright if method is None else upright.transpose(method)


def exif_block(orientation: int | None = None, *, gps: bool = True) -> bytes:
    """A TIFF-structured EXIF block with ``Exif\\0\\0`` prefix: camera make, a GPS IFD, an orientation."""
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if gps:
        exif[0x010F] = CAMERA_MAKE
        exif[0x8825] = {1: "N", 2: (37.0, 33.0, 59.0), 27: b"ASCII\x00\x00\x00" + GPS_TEXT}
    return exif.tobytes()


def xmp_packet(orientation: int | None = None) -> bytes:
    """An XMP packet carrying ``XMP_TEXT`` and, if given, ``tiff:Orientation``."""
    tag = f' tiff:Orientation="{orientation}"' if orientation else ""
    return (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description'
        + tag.encode()
        + b' exif:GPSLatitude="'
        + XMP_TEXT
        + b'"/></rdf:RDF></x:xmpmeta>'
    )


# -------------------------------------------------------------------------------------------- JPEG


def segment(marker: int, body: bytes) -> bytes:
    """A JPEG marker segment ``FF marker, length, body``."""
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def jpeg(img: Image.Image, *, progressive: bool = False, quality: int = 90, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, progressive=progressive, **kw)
    return buf.getvalue()


def scan_starts(data: bytes) -> list[int]:
    """Offsets of the SOS markers (FF DA cannot occur inside entropy-coded data)."""
    found, pos = [], data.find(b"\xff\xda")
    while pos >= 0:
        found.append(pos)
        pos = data.find(b"\xff\xda", pos + 2)
    return found


def insert(data: bytes, at: int, extra: bytes) -> bytes:
    return data[:at] + extra + data[at:]


def after_soi(data: bytes, extra: bytes) -> bytes:
    return insert(data, 2, extra)


def before_eoi(data: bytes, extra: bytes) -> bytes:
    assert data.endswith(b"\xff\xd9")
    return insert(data, len(data) - 2, extra)


def between_scans(data: bytes, extra: bytes, index: int = 1) -> bytes:
    """``extra`` inserted just before scan ``index`` of a progressive JPEG."""
    return insert(data, scan_starts(data)[index], extra)


def hidden_exif(orientation: int | None = None) -> bytes:
    return segment(0xE1, exif_block(orientation))


def twelve_bit(data: bytes) -> bytes:
    """``data`` with its frame header saying 12-bit samples (what a 12-bit encoder writes there)."""
    sof = data.find(b"\xff\xc0")
    return data[: sof + 4] + b"\x0c" + data[sof + 5 :]


# --------------------------------------------------------------------------------------------- PNG


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(img: Image.Image, *, before: tuple[bytes, ...] = (), after: tuple[bytes, ...] = ()) -> bytes:
    """``img`` as PNG with extra chunks inserted before the first IDAT and after the last one."""
    buf = io.BytesIO()
    img.save(buf, "PNG")
    data = buf.getvalue()
    first = data.find(b"IDAT") - 4
    iend = data.rfind(b"IEND") - 4
    return data[:first] + b"".join(before) + data[first:iend] + b"".join(after) + data[iend:]


def png_exif(orientation: int | None) -> bytes:
    return png_chunk(b"eXIf", exif_block(orientation)[6:])


def png_texts() -> tuple[bytes, ...]:
    """tEXt, zTXt, iTXt (XMP) and tIME chunks and a private chunk, all carrying markers."""
    return (
        png_chunk(b"tEXt", b"Comment\x00" + PNG_TEXT),
        png_chunk(b"zTXt", b"Location\x00\x00" + zlib.compress(GPS_TEXT)),
        png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp_packet()),
        png_chunk(b"tIME", b"\x07\xea\x01\x02\x03\x04\x05"),
        png_chunk(b"prVt", APP_TEXT),
    )


def png_raw_profile_exif(orientation: int) -> bytes:
    """ImageMagick's "Raw profile type exif" text chunk, which Pillow reads as EXIF."""
    block = exif_block(orientation)
    text = b"\nexif\n" + str(len(block)).rjust(8).encode() + b"\n" + block.hex().encode() + b"\n"
    return png_chunk(b"tEXt", b"Raw profile type exif\x00" + text)


def png_text_bomb() -> bytes:
    """A zTXt chunk that inflates past Pillow's text limit (1 MB)."""
    return png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(PNG_TEXT * 200_000, 9))


def srgb_icc_named(name: bytes) -> bytes:
    """An iCCP chunk holding an sRGB profile under a profile name that carries text."""
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return png_chunk(b"iCCP", name + b"\x00\x00" + zlib.compress(icc))


def cut_idat_stream(data: bytes) -> bytes:
    """A PNG whose zlib stream stops half-way while every chunk's CRC is right."""
    start = data.find(b"IDAT") - 4
    length = struct.unpack(">I", data[start : start + 4])[0]
    body = data[start + 8 : start + 8 + length // 2]
    return data[:start] + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


# -------------------------------------------------------------------------------------------- WebP


def webp(img: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "WEBP", quality=90, **kw)
    return buf.getvalue()


def webp_with_chunks(data: bytes, *extra: bytes) -> bytes:
    """A WebP with extra RIFF chunks appended (the RIFF size fixed)."""
    body = data[12:] + b"".join(extra)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def riff_chunk(fourcc: bytes, body: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) & 1 else b"")


def bytes_after_zlib_stream(data: bytes, payload: bytes) -> bytes:
    """A PNG with one more IDAT chunk after its image data, carrying ``payload`` past the end of the
    zlib stream (CRCs right)."""
    iend = data.rfind(b"IEND") - 4
    return data[:iend] + png_chunk(b"IDAT", payload) + data[iend:]
