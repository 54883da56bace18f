"""Generate realistic sample photos for tests, benchmarks and the demo.

Images are textured (a smooth colour field, mid-frequency blotches and per-pixel grain), not flat colours,
so their encoded sizes behave like photos: a 12 MP JPEG at quality 90 is about 3.5 MB, as a phone's is.
Everything is deterministic for a given ``seed`` and uses Pillow only (no numpy), so the demo can use it.

Every ``make_*`` function returns the encoded bytes and, when ``path`` is given, also writes them there.
"""

from __future__ import annotations

import io
import random
import zlib
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageCms, ImageDraw

__all__ = [
    "GPS_MARKER",
    "MAKE_MARKER",
    "adobe_rgb_like_profile",
    "make_bomb_png",
    "make_image",
    "make_jpeg",
    "make_oriented_jpeg",
    "make_png",
    "make_webp",
    "texture",
]

GPS_MARKER = b"GPS-SECRET-TRAIL"
"""Text planted in XMP/comment/text metadata by the generators, to assert it never leaves the machine."""
MAKE_MARKER = "SampleCam Inc."
"""The EXIF camera make written by ``exif_gps=True``."""

_GRAIN = 20  # per-pixel noise amplitude that makes q90 JPEG sizes match phone photos (~0.3 bytes/pixel)
RED = (230, 20, 20)

# The inverse of the transpose that EXIF orientation N asks a viewer to apply (Pillow's exif_transpose):
# storing ``STORE[n](upright)`` with tag N makes a correct reader show ``upright``.
STORE: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def texture(width: int, height: int, *, seed: int = 0, grain: int = _GRAIN) -> Image.Image:
    """An RGB photo-like texture of exactly ``width`` x ``height``, deterministic for ``seed``."""
    rnd = random.Random(seed)
    low = Image.frombytes("RGB", (8, 6), rnd.randbytes(8 * 6 * 3)).resize((width, height), Image.Resampling.BICUBIC)
    mw, mh = max(2, width // 24), max(2, height // 24)
    mid = Image.frombytes("RGB", (mw, mh), rnd.randbytes(mw * mh * 3))
    img = Image.blend(low, mid.resize((width, height), Image.Resampling.BILINEAR), 0.35)
    noise = Image.frombytes("L", (width, height), rnd.randbytes(width * height)).point(lambda v: v * grain // 256)
    # Compress the range first so adding the grain never clips.
    base = img.point(lambda v: v * (255 - grain) // 255)
    return ImageChops.add(base, Image.merge("RGB", (noise, noise, noise)))


def _marked(width: int, height: int, seed: int) -> Image.Image:
    """A texture with a red block in its top-left corner (orientation tests look for it)."""
    img = texture(width, height, seed=seed)
    ImageDraw.Draw(img).rectangle((0, 0, width // 4, height // 4), fill=RED)
    return img


def _exif(orientation: int | None, gps: bool) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if gps:
        exif[0x010F] = MAKE_MARKER
        exif[0x0110] = "Model X"
        exif[0x8825] = {1: "N", 2: (37.0, 33.0, 59.0), 3: "E", 4: (126.0, 58.0, 40.0)}
    return exif


def _write(path: str | Path | None, data: bytes) -> bytes:
    if path is not None:
        Path(path).write_bytes(data)
    return data


def _as_mode(img: Image.Image, mode: str) -> Image.Image:
    if mode == "RGBA":
        alpha = Image.linear_gradient("L").resize(img.size)
        out = img.convert("RGBA")
        out.putalpha(alpha)
        return out
    if mode == "LA":
        out = img.convert("LA")
        out.putalpha(Image.linear_gradient("L").resize(img.size))
        return out
    if mode == "P":
        return img.quantize(64)
    return img.convert(mode)


def adobe_rgb_like_profile() -> bytes:
    """A wide-gamut RGB ICC profile: LittleCMS's sRGB with its colorants replaced by Adobe RGB (1998)'s.

    Saturated colours tagged with it must come out more saturated once converted to sRGB, so tests can
    tell a real colour conversion from a profile that was merely dropped.
    """
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    colorants = {  # D50-adapted XYZ of the Adobe RGB (1998) primaries
        b"rXYZ": (0.60974, 0.31111, 0.01947),
        b"gXYZ": (0.20528, 0.62567, 0.06087),
        b"bXYZ": (0.14919, 0.06322, 0.74457),
    }
    count = int.from_bytes(icc[128:132], "big")
    for i in range(count):
        entry = 132 + 12 * i
        sig = bytes(icc[entry : entry + 4])
        offset = int.from_bytes(icc[entry + 4 : entry + 8], "big")
        if sig in colorants:
            for k, value in enumerate(colorants[sig]):
                pos = offset + 8 + 4 * k
                icc[pos : pos + 4] = round(value * 65536).to_bytes(4, "big", signed=True)
    icc[84:100] = bytes(16)  # the profile ID (an MD5 of the old content) becomes "not computed"
    return bytes(icc).replace(b"s\x00R\x00G\x00B", b"W\x00i\x00d\x00e").replace(b"sRGB", b"Wide")


def make_jpeg(
    path: str | Path | None,
    width: int,
    height: int,
    *,
    orientation: int | None = None,
    quality: int = 90,
    exif_gps: bool = False,
    mode: str = "RGB",
    seed: int = 0,
    icc_profile: bytes | None = None,
    progressive: bool = False,
    comment: bool = False,
    xmp: bool = False,
) -> bytes:
    """A JPEG of ``width`` x ``height`` as stored (``orientation`` only sets the tag, see
    ``make_oriented_jpeg``); ``exif_gps`` adds camera make/model and a GPS IFD, ``xmp``/``comment``
    add segments carrying ``GPS_MARKER``; ``mode`` is ``RGB``, ``L`` or ``CMYK``."""
    img = _as_mode(texture(width, height, seed=seed), mode)
    kw: dict[str, Any] = {"quality": quality, "progressive": progressive}
    if orientation is not None or exif_gps:
        kw["exif"] = _exif(orientation, exif_gps).tobytes()
    if icc_profile is not None:
        kw["icc_profile"] = icc_profile
    if comment:
        kw["comment"] = b"taken at " + GPS_MARKER
    if xmp:
        kw["xmp"] = b"<x:xmpmeta><exif:GPSLatitude>" + GPS_MARKER + b"</exif:GPSLatitude></x:xmpmeta>"
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return _write(path, buf.getvalue())


def make_oriented_jpeg(path: str | Path | None, width: int, height: int, orientation: int, *, seed: int = 0) -> bytes:
    """A JPEG that *displays* as ``width`` x ``height`` with a red block top-left once EXIF
    ``orientation`` is honoured: the pixels are stored transformed and tagged accordingly."""
    upright = _marked(width, height, seed)
    method = STORE[orientation]
    stored = upright if method is None else upright.transpose(method)
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=92, exif=_exif(orientation, False).tobytes())
    return _write(path, buf.getvalue())


def make_png(
    path: str | Path | None,
    width: int,
    height: int,
    *,
    mode: str = "RGB",
    seed: int = 0,
    text: bool = False,
    exif_gps: bool = False,
    icc_profile: bytes | None = None,
) -> bytes:
    """A PNG; ``mode`` is ``RGB``, ``L``, ``RGBA``, ``LA``, ``P`` or ``I;16`` (16-bit grey);
    ``text`` adds tEXt/iTXt/tIME chunks and ``exif_gps`` an eXIf chunk, all carrying metadata to strip."""
    from PIL import PngImagePlugin

    img = _as_mode(texture(width, height, seed=seed), "L" if mode == "I;16" else mode)
    if mode == "I;16":
        img = img.convert("I").point(lambda v: v * 257).convert("I;16")
    kw: dict[str, Any] = {}
    if text:
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "taken at " + GPS_MARKER.decode())
        info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>" + GPS_MARKER.decode() + "</x:xmpmeta>")
        kw["pnginfo"] = info
    if exif_gps:
        kw["exif"] = _exif(None, True).tobytes()
    if icc_profile is not None:
        kw["icc_profile"] = icc_profile
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    data = buf.getvalue()
    if text:  # Pillow cannot write tIME; splice one in before IEND to exercise its removal.
        body = b"tIME" + bytes([7, 233, 1, 2, 3, 4, 5])
        chunk = (7).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
        data = data[:-12] + chunk + data[-12:]
    return _write(path, data)


def make_webp(
    path: str | Path | None,
    width: int,
    height: int,
    *,
    lossless: bool = False,
    alpha: bool = False,
    exif_gps: bool = False,
    xmp: bool = False,
    animated: bool = False,
    quality: int = 90,
    seed: int = 0,
) -> bytes:
    """A WebP; ``exif_gps``/``xmp`` add EXIF/XMP chunks, ``animated`` makes two frames."""
    img = texture(width, height, seed=seed)
    if alpha:
        img = _as_mode(img, "RGBA")
    kw: dict[str, Any] = {"lossless": lossless, "quality": quality}
    if exif_gps:
        kw["exif"] = _exif(None, True).tobytes()
    if xmp:
        kw["xmp"] = b"<x:xmpmeta>" + GPS_MARKER + b"</x:xmpmeta>"
    if animated:
        kw["save_all"] = True
        kw["append_images"] = [texture(width, height, seed=seed + 1)]
    buf = io.BytesIO()
    img.save(buf, "WEBP", **kw)
    return _write(path, buf.getvalue())


def make_image(
    path: str | Path | None,
    width: int,
    height: int,
    fmt: str,
    *,
    mode: str = "RGB",
    seed: int = 0,
    **save: Any,
) -> bytes:
    """Any format Pillow (or pillow-heif, for ``HEIF``) can write: ``GIF``, ``TIFF``, ``BMP``, ``HEIF``,
    ``AVIF``...; extra keyword arguments go to ``Image.save`` (e.g. ``exif=``, ``quality=``)."""
    img = _as_mode(texture(width, height, seed=seed), mode)
    buf = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        # Encoded directly: registering pillow-heif's plugin would change Pillow for the whole process.
        pillow_heif.from_pillow(img).save(buf, **{"quality": 80, **save})
    else:
        img.save(buf, fmt, **save)
    return _write(path, buf.getvalue())


def make_bomb_png(path: str | Path | None, width: int = 40_000, height: int = 40_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb's calling card).

    The IDAT holds only the first rows: anything that decodes before checking the size would either
    allocate gigabytes or fail as truncated; a correct reader rejects it from the header alone.
    """

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    idat = zlib.compress(b"\x00" * ((width + 7) // 8 + 1) * 4)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    return _write(path, data)
