"""The image stage: every reason code, every transform, metadata removal, and "never raises"."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, features

from pipeline.corpus import make_corpus
from pipeline.images import REASONS, prepare
from pipeline.models import ImagePolicy, Prepared, Rejected
from pipeline.samples import (
    GPS_MARKER,
    MAKE_MARKER,
    adobe_rgb_like_profile,
    make_bomb_png,
    make_image,
    make_jpeg,
    make_oriented_jpeg,
    make_png,
    make_webp,
)

POLICY = ImagePolicy()
TYPES = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png"), "WEBP": ("image/webp", ".webp")}


def assert_valid(result: Prepared | Rejected, policy: ImagePolicy = POLICY) -> Prepared:
    """Re-open the output and check it against the API's rules (and our privacy promise)."""
    assert isinstance(result, Prepared), result
    assert (result.content_type, result.extension) == TYPES[result.format]
    assert len(result.data) <= policy.max_bytes
    with Image.open(io.BytesIO(result.data)) as im:
        assert im.format == result.format
        assert im.size == (result.width, result.height)
        assert getattr(im, "n_frames", 1) == 1
        im.load()
        assert im.mode in ("RGB", "L")
    assert min(result.width, result.height) >= policy.min_side
    if policy.max_side and min(result.width, result.height) > policy.min_side:
        assert max(result.width, result.height) <= policy.max_side
    if not policy.keep_metadata:
        assert b"Exif\x00\x00" not in result.data
        assert GPS_MARKER not in result.data
        assert MAKE_MARKER.encode() not in result.data
    assert result.actions
    return result


def reject(result: Prepared | Rejected, reason: str) -> Rejected:
    assert isinstance(result, Rejected), result
    assert result.reason == reason, result
    assert result.reason in REASONS
    assert result.detail
    return result


def rgb_at(data: bytes, xy: tuple[int, int]) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(data)) as im:
        r, g, b = im.convert("RGB").getpixel(xy)  # type: ignore[misc]
    return int(r), int(g), int(b)


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB").tobytes()


# ---------------------------------------------------------------------------------------------- corpus


def test_corpus_outcomes_and_outputs(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path, scale=0.3)
    assert len(corpus) >= 20
    for path, expected in corpus:
        result = prepare(path)
        got = result.action if isinstance(result, Prepared) else result.reason
        assert got == expected, (path.name, result)
        if isinstance(result, Prepared):
            assert_valid(result)
            raw = path.read_bytes()
            assert result.source_bytes == len(raw)
            assert result.source_sha256 == hashlib.sha256(raw).hexdigest()


def test_threads_give_the_same_answers_and_prepare_pickles(tmp_path: Path) -> None:
    paths = [p for p, _ in make_corpus(tmp_path, scale=0.3)]
    serial = [prepare(p) for p in paths]
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(prepare, paths)) == serial
    assert pickle.loads(pickle.dumps(prepare)) is prepare


# ------------------------------------------------------------------------------------------ reasons


def test_not_found(tmp_path: Path) -> None:
    reject(prepare(tmp_path / "nope.jpg"), "not_found")
    (tmp_path / "file").write_bytes(b"x")
    reject(prepare(tmp_path / "file" / "below.jpg"), "not_found")


def test_unreadable(tmp_path: Path) -> None:
    assert "directory" in reject(prepare(tmp_path), "unreadable").detail
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    reject(prepare(fifo), "unreadable")  # and did not block reading it


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_permission(tmp_path: Path) -> None:
    path = tmp_path / "secret.jpg"
    make_jpeg(path, 300, 300)
    path.chmod(0)
    reject(prepare(path), "unreadable")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.jpg").write_bytes(b"")
    reject(prepare(tmp_path / "e.jpg"), "empty_file")
    reject(prepare(b""), "empty_file")


def test_too_large_is_checked_before_reading(tmp_path: Path) -> None:
    data = make_jpeg(tmp_path / "a.jpg", 300, 300)
    policy = ImagePolicy(max_input_bytes=len(data) - 1)
    result = reject(prepare(tmp_path / "a.jpg", policy), "too_large")
    assert result.source_sha256 is None  # never read
    reject(prepare(data, policy), "too_large")
    assert isinstance(prepare(data, ImagePolicy(max_input_bytes=len(data))), Prepared)


@pytest.mark.parametrize(
    "data",
    [
        b"meeting notes\n" * 40,
        b"%PDF-1.7\n" + bytes(range(256)) * 4,
        b"8BPS" + bytes(500),
        bytes(range(256)) * 8,
    ],
)
def test_unsupported_format(data: bytes) -> None:
    reject(prepare(data), "unsupported_format")


def _corrupt_cases() -> list[tuple[str, bytes]]:
    jpeg = make_jpeg(None, 400, 300, seed=3)
    png = make_png(None, 400, 300, seed=3)
    webp = make_webp(None, 400, 300, seed=3)
    gif = make_image(None, 400, 300, "GIF", mode="P")
    tiff = make_image(None, 400, 300, "TIFF")
    heic = make_image(None, 400, 300, "HEIF", quality=70)
    flipped = bytearray(png)
    flipped[len(png) // 2] ^= 0xFF
    return [
        ("jpeg-half", jpeg[: len(jpeg) // 2]),
        ("jpeg-header-only", jpeg[:300]),
        ("jpeg-no-eoi", jpeg[:-2]),
        ("png-half", png[: len(png) // 2]),
        ("png-no-iend", png[:-12]),
        ("png-bad-crc", bytes(flipped)),
        ("webp-half", webp[: len(webp) // 2]),
        ("gif-half", gif[: len(gif) // 2]),
        ("tiff-half", tiff[: len(tiff) // 2]),
        ("heic-half", heic[: len(heic) // 2]),
        ("jpeg-magic-only", b"\xff\xd8\xff\xe0" + bytes(100)),
    ]


@pytest.mark.parametrize(("name", "data"), _corrupt_cases(), ids=[c[0] for c in _corrupt_cases()])
def test_corrupt(name: str, data: bytes) -> None:
    result = reject(prepare(data), "corrupt")
    assert result.source_bytes == len(data)
    assert result.source_sha256 == hashlib.sha256(data).hexdigest()


def test_pass_through_proves_the_png_image_data_complete() -> None:
    png = bytearray(make_png(None, 400, 300, seed=4))
    # Damage the zlib stream inside IDAT and recompute the chunk CRC: every CRC is right, the data is not.
    start = png.index(b"IDAT") - 4
    length = struct.unpack(">I", png[start : start + 4])[0]
    body = start + 8
    png[body + 2 : body + length] = bytes(length - 2)
    png[body + length : body + length + 4] = struct.pack(">I", zlib.crc32(png[start + 4 : body + length]))
    reject(prepare(bytes(png)), "corrupt")
    reject(prepare(bytes(png), ImagePolicy(verify_pixels=True)), "corrupt")
    assert_valid(prepare(make_jpeg(None, 300, 300), ImagePolicy(verify_pixels=True)))


def test_too_many_pixels_from_the_header_without_decoding() -> None:
    result = reject(prepare(make_bomb_png(None)), "too_many_pixels")
    assert result.detail.startswith("40000x40000 px")
    reject(prepare(make_jpeg(None, 400, 300), ImagePolicy(max_pixels=100_000)), "too_many_pixels")
    gif = make_image(None, 400, 300, "GIF", mode="P")
    reject(prepare(gif, ImagePolicy(max_pixels=100_000)), "too_many_pixels")


@pytest.mark.parametrize("size", [(12_000, 10_000), (60_000, 60_000)], ids=["warning-zone", "error-zone"])
def test_pillow_bomb_zone_is_the_policys_too_many_pixels(size: tuple[int, int]) -> None:
    # A GIF whose screen descriptor claims a huge canvas (where Pillow's own guard would warn, or raise):
    # the policy's limit, checked before decoding, rejects it; Pillow's process-wide limit is not used.
    gif = bytearray(make_image(None, 300, 300, "GIF", mode="P"))
    gif[6:10] = struct.pack("<HH", *size)
    reject(prepare(bytes(gif)), "too_many_pixels")


def test_too_small_never_upscales() -> None:
    result = reject(prepare(make_jpeg(None, 200, 180)), "too_small")
    assert result.detail == "200x180 px; the minimum is 256 px on each side"
    reject(prepare(make_png(None, 300, 255)), "too_small")
    reject(prepare(make_image(None, 255, 900, "GIF", mode="P")), "too_small")
    reject(prepare(make_image(None, 900, 255, "HEIF", quality=70)), "too_small")
    out = assert_valid(prepare(make_png(None, 256, 300, mode="RGBA")))
    assert (out.width, out.height) == (256, 300)


# --------------------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_eight_orientations_end_upright(orientation: int) -> None:
    data = make_oriented_jpeg(None, 400, 300, orientation, seed=orientation)
    result = assert_valid(prepare(data))
    turned = {("reoriented",), ("reoriented", "lossless")}  # lossless where libjpeg-turbo is and the turn is perfect
    if orientation == 1:
        assert result.actions == ("passthrough", "stripped")
    else:
        assert result.actions in turned
    assert (result.width, result.height) == (400, 300)
    corners = {"tl": (20, 20), "tr": (379, 20), "bl": (20, 279), "br": (379, 279)}
    red = {k: (v := rgb_at(result.data, p))[0] > 180 and v[1] < 80 and v[2] < 80 for k, p in corners.items()}
    assert red == {"tl": True, "tr": False, "bl": False, "br": False}


def test_cmyk_becomes_rgb() -> None:
    result = assert_valid(prepare(make_jpeg(None, 500, 400, mode="CMYK")))
    assert result.actions == ("converted",)


def test_non_srgb_profile_is_converted_and_srgb_passes() -> None:
    wide = adobe_rgb_like_profile()
    img = Image.new("RGB", (300, 300), (100, 150, 100))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, icc_profile=wide)
    result = assert_valid(prepare(buf.getvalue()))
    assert result.actions == ("converted",)
    assert b"ICC_PROFILE" not in result.data
    r, g, _ = rgb_at(result.data, (150, 150))
    assert r < 85 and 140 < g < 160  # wide-gamut green looks more saturated in sRGB
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = make_jpeg(None, 300, 300, icc_profile=srgb)
    result = assert_valid(prepare(data))  # an sRGB profile is dropped: untagged pixels are read as sRGB
    assert result.actions == ("passthrough", "stripped") and b"ICC_PROFILE" not in result.data
    assert pixels(result.data) == pixels(data)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    img = Image.new("I;16", (300, 300), 40000)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    result = assert_valid(prepare(buf.getvalue()))
    assert result.actions == ("converted",)
    value = Image.open(io.BytesIO(result.data)).getpixel((150, 150))
    assert isinstance(value, int) and abs(value - 40000 / 257) <= 3


def test_alpha_is_flattened_on_white() -> None:
    img = Image.new("RGBA", (400, 300), (200, 10, 10, 255))
    img.paste((0, 0, 0, 0), (0, 0, 200, 300))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    result = assert_valid(prepare(buf.getvalue()))
    assert min(rgb_at(result.data, (50, 150))) > 240
    assert rgb_at(result.data, (350, 150))[0] > 180
    assert assert_valid(prepare(make_png(None, 300, 300, mode="LA"))).actions == ("converted",)


@pytest.mark.parametrize(
    "data",
    [
        make_png(None, 400, 300, mode="P"),
        make_png(None, 400, 300, mode="RGBA"),
        make_png(None, 400, 300, mode="I;16"),
        make_webp(None, 400, 300, alpha=True),
        make_webp(None, 400, 300, animated=True),
        make_image(None, 400, 300, "GIF", mode="P", save_all=True, append_images=[Image.new("P", (400, 300))]),
        make_image(None, 400, 300, "TIFF"),
        make_image(None, 400, 300, "TIFF", mode="CMYK"),
        make_image(None, 400, 300, "BMP"),
        make_image(None, 400, 300, "HEIF", quality=70),
    ],
    ids=[
        "png-P",
        "png-RGBA",
        "png-16",
        "webp-alpha",
        "webp-anim",
        "gif-anim",
        "tiff",
        "tiff-cmyk",
        "bmp",
        "heic",
    ],
)
def test_other_formats_become_jpeg(data: bytes) -> None:
    result = assert_valid(prepare(data))
    assert result.format == "JPEG" and result.actions == ("converted",)
    assert (result.width, result.height) == (400, 300)


@pytest.mark.skipif(not features.check("avif"), reason="Pillow built without AVIF")
def test_avif_becomes_jpeg() -> None:
    assert assert_valid(prepare(make_image(None, 400, 300, "AVIF", quality=60))).format == "JPEG"


def test_heic_orientation_is_applied_by_the_decoder() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    result = assert_valid(prepare(make_image(None, 400, 300, "HEIF", quality=70, exif=exif.tobytes())))
    assert (result.width, result.height) == (300, 400)
    assert result.actions == ("reoriented", "converted")


def test_lossless_webp_and_grey_jpeg_pass() -> None:
    for data in (make_webp(None, 400, 300, lossless=True), make_jpeg(None, 400, 300, mode="L")):
        result = assert_valid(prepare(data))
        assert result.actions == ("passthrough",) and result.data == data


def test_max_side_uses_dct_scale_when_close_and_resamples_otherwise() -> None:
    data = make_jpeg(None, 2016, 1512, seed=5)
    snapped = assert_valid(prepare(data, ImagePolicy(max_side=1024)), ImagePolicy(max_side=1024))
    assert (snapped.width, snapped.height) == (1008, 756) and snapped.actions == ("resized",)
    exact = assert_valid(prepare(data, ImagePolicy(max_side=700)), ImagePolicy(max_side=700))
    assert (exact.width, exact.height) == (700, 525)
    png = assert_valid(prepare(make_png(None, 1600, 1200), ImagePolicy(max_side=500)))
    assert (png.width, png.height) == (500, 375) and png.actions == ("converted", "resized")


def test_max_side_is_honoured_closely_even_when_the_source_is_over_max_bytes() -> None:
    data = make_jpeg(None, 2400, 1600, seed=8)
    policy = ImagePolicy(max_side=1000, max_bytes=len(data) // 2)
    result = assert_valid(prepare(data, policy), policy)
    assert 900 <= result.width <= 1000  # not the 1/4 DCT size (600 px) a loose snap would accept


def test_min_side_wins_over_max_side() -> None:
    policy = ImagePolicy(max_side=512)
    result = assert_valid(prepare(make_jpeg(None, 2000, 300), policy), policy)
    assert result.height == 256 and result.width <= 2000


def test_fit_to_max_bytes() -> None:
    jpeg = make_jpeg(None, 1600, 1200, seed=6, quality=95)
    policy = ImagePolicy(max_bytes=len(jpeg) // 4)
    result = assert_valid(prepare(jpeg, policy), policy)
    assert "resized" in result.actions
    png = make_png(None, 800, 600, seed=6)
    policy = ImagePolicy(max_bytes=len(png) // 2)  # a PNG that only fails on size: re-encoded as JPEG
    result = assert_valid(prepare(png, policy), policy)
    assert result.actions == ("converted",) and (result.width, result.height) == (800, 600)
    policy = ImagePolicy(max_bytes=60_000)  # quality steps, then size steps
    assert_valid(prepare(make_png(None, 1200, 900, seed=7), policy), policy)


# ----------------------------------------------------------------------------------------- metadata


def test_jpeg_metadata_stripped_losslessly() -> None:
    data = make_jpeg(None, 500, 400, exif_gps=True, xmp=True, comment=True)
    assert GPS_MARKER in data and b"Exif" in data
    result = assert_valid(prepare(data))
    assert result.actions == ("passthrough", "stripped")
    assert b"JFIF" in result.data and b"http://ns.adobe.com/xap" not in result.data
    assert pixels(result.data) == pixels(data)
    # Anything after the end-of-image marker (a trailer, an appended picture with its own EXIF) goes too.
    tail = data + make_jpeg(None, 300, 300, exif_gps=True)
    result = assert_valid(prepare(tail))
    assert len(result.data) < len(data) and pixels(result.data) == pixels(data)


def test_png_metadata_stripped_losslessly() -> None:
    data = make_png(None, 400, 300, text=True, exif_gps=True)
    for kind in (b"tEXt", b"iTXt", b"tIME", b"eXIf"):
        assert kind in data
    result = assert_valid(prepare(data))
    assert result.actions == ("passthrough", "stripped")
    for kind in (b"tEXt", b"iTXt", b"tIME", b"eXIf"):
        assert kind not in result.data
    assert pixels(result.data) == pixels(data)


def test_webp_metadata_stripped_losslessly() -> None:
    data = make_webp(None, 400, 300, exif_gps=True, xmp=True)
    assert b"EXIF" in data and b"XMP " in data
    result = assert_valid(prepare(data))
    assert result.actions == ("passthrough", "stripped")
    assert b"EXIF" not in result.data and b"XMP " not in result.data
    assert struct.unpack("<I", result.data[4:8])[0] == len(result.data) - 8
    assert result.data[20] & 0x0C == 0  # VP8X flags no longer announce EXIF/XMP
    assert pixels(result.data) == pixels(data)


def test_reencoded_output_carries_no_metadata() -> None:
    data = make_jpeg(None, 400, 300, orientation=6, exif_gps=True, xmp=True, comment=True)
    result = assert_valid(prepare(data))
    assert result.actions == ("reoriented",) and (result.width, result.height) == (300, 400)


def test_keep_metadata_opts_out() -> None:
    policy = ImagePolicy(keep_metadata=True)
    data = make_jpeg(None, 400, 300, exif_gps=True)
    result = assert_valid(prepare(data, policy), policy)
    assert result.data == data and result.actions == ("passthrough",)
    rotated = make_jpeg(None, 400, 300, orientation=6, exif_gps=True)
    result = assert_valid(prepare(rotated, policy), policy)
    exif = Image.open(io.BytesIO(result.data)).getexif()
    assert exif.get(0x010F) == MAKE_MARKER and 0x0112 not in exif
    assert exif.get_ifd(0x8825).get(1) == "N"


# -------------------------------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=3000))
def test_random_bytes_never_raise(data: bytes) -> None:
    result = prepare(data)
    if isinstance(result, Prepared):
        assert_valid(result)
    else:
        assert result.reason in REASONS


_FORMATS = {
    "JPEG": ("RGB", "L", "CMYK"),
    "PNG": ("RGB", "L", "RGBA", "LA", "P", "I;16"),
    "WEBP": ("RGB", "RGBA"),
    "GIF": ("P",),
    "BMP": ("RGB", "L"),
    "TIFF": ("RGB", "CMYK", "L"),
}


@dataclass(frozen=True)
class Spec:
    """The drawn parameters of a test image (a small repr: Hypothesis prints it, never the bytes)."""

    fmt: str
    mode: str
    width: int
    height: int
    seed: int
    orientation: int | None
    damage: str
    where: float
    flip: int

    def build(self) -> bytes:
        kw = {}
        if self.orientation is not None:
            exif = Image.Exif()
            exif[0x0112] = self.orientation
            kw["exif"] = exif.tobytes()
        data = make_image(None, self.width, self.height, self.fmt, mode=self.mode, seed=self.seed, **kw)
        at = int(self.where * len(data))
        if self.damage == "truncate":
            return data[:at]
        if self.damage == "flip":
            at = min(at, len(data) - 1)
            return data[:at] + bytes([data[at] ^ self.flip]) + data[at + 1 :]
        return data


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    fmt = draw(st.sampled_from(sorted(_FORMATS)))
    return Spec(
        fmt=fmt,
        mode=draw(st.sampled_from(_FORMATS[fmt])),
        width=draw(st.integers(1, 700)),
        height=draw(st.integers(1, 700)),
        seed=draw(st.integers(0, 5)),
        orientation=draw(st.none() | st.integers(0, 9)) if fmt == "JPEG" else None,
        damage=draw(st.sampled_from(["none", "none", "truncate", "flip"])),
        where=draw(st.floats(0, 1)),
        flip=draw(st.integers(1, 255)),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs(), st.sampled_from([POLICY, ImagePolicy(max_side=400), ImagePolicy(max_bytes=40_000)]))
def test_random_images_are_prepared_validly_or_rejected(spec: Spec, policy: ImagePolicy) -> None:
    data = spec.build()
    result = prepare(data, policy)
    if isinstance(result, Prepared):
        assert_valid(result, policy)
        assert result.source_sha256 == hashlib.sha256(data).hexdigest()
    else:
        assert result.reason in REASONS and result.detail
