"""Hostile files (issue 11, "Images"): every prepared output decodes fully, is upright, holds none of the
source's metadata, and nothing is cut short; orientation is read as Pillow reads it; reasons are right."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import image_factory as f
import pytest
from PIL import Image, ImageFile

from pipeline.images import prepare, sniff
from pipeline.models import ImagePolicy, Prepared, Rejected

W, H = 320, 272  # upright size of every picture; both sides over the API's 256 px minimum


def _jpeg_cases() -> list[f.Case]:
    up = f.stored(W, H, 1)
    plain = f.jpeg(up)
    tagged = f.jpeg(up, exif=f.exif_block(1))
    prog = f.jpeg(up, progressive=True)
    six = f.stored(W, H, 6)
    com_ffd9 = f.segment(0xFE, b"note \xff\xd9 " + f.COMMENT_TEXT)
    prog_com = f.between_scans(prog, com_ffd9)
    cut_after_com = prog_com.index(f.COMMENT_TEXT) + len(f.COMMENT_TEXT)
    appn = b"".join(f.segment(m, b"Vendor\x00" + f.APP_TEXT) for m in range(0xE3, 0xF0) if m != 0xEE)
    jfif_thumb = f.segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x02\x01" + f.APP_TEXT[:6])
    return [
        f.Case("jpeg-exif-after-scan-before-eoi", f.before_eoi(plain, f.hidden_exif(8)), "prepared", (W, H)),
        f.Case("jpeg-exif-between-progressive-scans", f.between_scans(prog, f.hidden_exif(6)), "prepared", (W, H)),
        f.Case("jpeg-xmp-com-after-scan", f.before_eoi(plain, f.segment(0xFE, f.COMMENT_TEXT)), "prepared", (W, H)),
        f.Case("jpeg-app0-not-jfif", f.after_soi(plain, f.segment(0xE0, b"LOCN\x00" + f.APP_TEXT)), "prepared", (W, H)),
        f.Case("jpeg-jfif-with-thumbnail", f.after_soi(plain, jfif_thumb), "prepared", (W, H)),
        f.Case("jpeg-every-appn", f.after_soi(plain, appn), "prepared", (W, H)),
        f.Case("jpeg-appn-between-scans", f.between_scans(prog, appn, 2), "prepared", (W, H)),
        f.Case("jpeg-xmp-icc-comment", f.jpeg(up, exif=f.exif_block(1), comment=f.COMMENT_TEXT,
                                              xmp=f.xmp_packet()), "prepared", (W, H)),
        f.Case("jpeg-trailer-and-appended-picture", plain + f.TRAILER_TEXT + f.jpeg(up, exif=f.exif_block(3)),
               "prepared", (W, H)),
        f.Case("jpeg-com-with-ffd9-between-scans", prog_com, "prepared", (W, H)),
        f.Case("jpeg-com-with-ffd9-in-header", f.after_soi(prog, com_ffd9), "prepared", (W, H)),
        f.Case("jpeg-com-with-ffd9-cut-after-it", prog_com[:cut_after_com], "corrupt"),
        f.Case("jpeg-progressive-cut-in-last-scan", prog[: f.scan_starts(prog)[-1] + 40], "corrupt"),
        f.Case("jpeg-baseline-without-eoi", plain[:-2], "corrupt"),
        f.Case("jpeg-cut-in-header", plain[:200], "corrupt"),
        f.Case("jpeg-two-exif-first-says-6", f.insert(f.jpeg(six, exif=f.exif_block(6)),
                                                      f.scan_starts(f.jpeg(six, exif=f.exif_block(6)))[0],
                                                      f.hidden_exif(1)), "prepared", (W, H)),
        f.Case("jpeg-two-exif-first-says-1", f.insert(tagged, f.scan_starts(tagged)[0], f.hidden_exif(6)),
               "prepared", (W, H)),
        f.Case("jpeg-xmp-orientation-6", f.jpeg(six, xmp=f.xmp_packet(6)), "prepared", (W, H)),
        f.Case("jpeg-progressive-orientation-8-hidden-exif",
               f.between_scans(f.jpeg(f.stored(W, H, 8), progressive=True, exif=f.exif_block(8)), f.hidden_exif(3)),
               "prepared", (W, H)),
        f.Case("jpeg-junk-between-segments", f.insert(plain, plain.index(b"\xff\xdb"), b"JUNK" + f.APP_TEXT),
               "prepared", (W, H)),
        f.Case("jpeg-12-bit", f.twelve_bit(plain), "unsupported_format"),
    ]


def _png_cases() -> list[f.Case]:
    up = f.stored(W, H, 1)
    texts = f.png_texts()
    return [
        f.Case("png-metadata-before-and-after-idat",
               f.png(up, before=(*texts, f.png_exif(1), f.srgb_icc_named(f.ICC_TEXT)), after=texts)
               + f.TRAILER_TEXT, "prepared", (W, H)),
        f.Case("png-exif-orientation-6", f.png(f.stored(W, H, 6), before=(f.png_exif(6),)), "prepared", (W, H)),
        f.Case("png-exif-after-idat-orientation-8", f.png(f.stored(W, H, 8), after=(f.png_exif(8),)),
               "prepared", (W, H)),
        f.Case("png-two-exif-last-says-6", f.png(f.stored(W, H, 6), before=(f.png_exif(3), f.png_exif(6))),
               "prepared", (W, H)),
        f.Case("png-exif-before-idat-wins-over-after", f.png(f.stored(W, H, 3), before=(f.png_exif(3),),
                                                             after=(f.png_exif(6),)), "prepared", (W, H)),
        f.Case("png-raw-profile-exif-6", f.png(f.stored(W, H, 6), before=(f.png_raw_profile_exif(6),)),
               "prepared", (W, H)),
        f.Case("png-xmp-orientation-8",
               f.png(f.stored(W, H, 8), before=(f.png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00"
                                                           + f.xmp_packet(8)),)), "prepared", (W, H)),
        f.Case("png-rgba-text-over-pillow-limit", f.png(up.convert("RGBA"), before=(f.png_text_bomb(),)),
               "prepared", (W, H)),
        f.Case("png-rgb-text-over-pillow-limit-exif-6",
               f.png(f.stored(W, H, 6), before=(f.png_text_bomb(), f.png_exif(6))), "prepared", (W, H)),
        f.Case("png-palette-with-text", f.png(up.convert("P"), before=texts), "prepared", (W, H)),
        f.Case("png-zlib-stream-cut-crcs-fine", f.cut_idat_stream(f.png(up)), "corrupt"),
        f.Case("png-bytes-after-zlib-stream", f.bytes_after_zlib_stream(f.png(up), f.APP_TEXT), "prepared", (W, H)),
    ]


def _webp_cases() -> list[f.Case]:
    up = f.stored(W, H, 1)
    extra = f.riff_chunk(b"ZZZZ", f.APP_TEXT)
    meta = f.webp(up, exif=f.exif_block(1), xmp=f.xmp_packet())
    return [
        f.Case("webp-exif-xmp-private-chunk", f.webp_with_chunks(meta, extra), "prepared", (W, H)),
        f.Case("webp-exif-orientation-6", f.webp(f.stored(W, H, 6), exif=f.exif_block(6)), "prepared", (W, H)),
        f.Case("webp-lossless-exif-orientation-3", f.webp(f.stored(W, H, 3), lossless=True, exif=f.exif_block(3)),
               "prepared", (W, H)),
        f.Case("webp-xmp-orientation-8", f.webp(f.stored(W, H, 8), xmp=f.xmp_packet(8)), "prepared", (W, H)),
        f.Case("webp-alpha-with-metadata", f.webp(up.convert("RGBA"), exif=f.exif_block(1), xmp=f.xmp_packet()),
               "prepared", (W, H)),
        f.Case("webp-truncated", meta[: len(meta) // 2], "corrupt"),
    ]


CASES = _jpeg_cases() + _png_cases() + _webp_cases()


def is_red(rgb: tuple[int, int, int]) -> bool:
    return rgb[0] > 170 and rgb[1] < 90 and rgb[2] < 90


def check_clean_complete_upright(data: bytes, size: tuple[int, int]) -> None:
    """What the issue asks of every prepared output: full decode, upright by content, no metadata."""
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    with Image.open(io.BytesIO(data)) as im:
        im.load()  # raises on truncated data
        assert im.size == size
        rgb = im.convert("RGB")
    w, h = size
    corners = [(w // 10, h // 10), (w - w // 10, h // 10), (w // 10, h - h // 10), (w - w // 10, h - h // 10)]
    reds = [is_red(rgb.getpixel(p)) for p in corners]  # type: ignore[arg-type]
    assert reds == [True, False, False, False], reds
    for marker in f.MARKERS:
        assert marker not in data, marker
    assert b"Exif\x00\x00" not in data and b"http://ns.adobe.com" not in data and b"ICC_PROFILE" not in data
    header = sniff.inspect(data)
    assert header is not None and sniff.stripped(data, header) == data  # nothing left to strip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_file(case: f.Case) -> None:
    result = prepare(case.data)
    if case.expect != "prepared":
        assert isinstance(result, Rejected) and result.reason == case.expect, result
        return
    assert isinstance(result, Prepared), result
    assert (result.width, result.height) == case.size
    check_clean_complete_upright(result.data, case.size)


@pytest.mark.parametrize("case", [c for c in CASES if c.expect == "prepared"][:6], ids=lambda c: c.name)
def test_hostile_file_from_a_path(case: f.Case, tmp_path: Path) -> None:
    path = tmp_path / "photo"
    path.write_bytes(case.data)
    by_path, by_bytes = prepare(path), prepare(case.data)
    assert by_path == by_bytes and isinstance(by_path, Prepared)
    assert by_path.source_bytes == len(case.data)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.expect == "prepared" and "limit" not in c.name], ids=lambda c: c.name
)
def test_orientation_is_read_as_pillow_reads_it(case: f.Case) -> None:
    header = sniff.inspect(case.data)
    assert header is not None
    with Image.open(io.BytesIO(case.data)) as im:
        expected = im.getexif().get(0x0112, 1)
    assert header.orientation == expected


@pytest.mark.parametrize("name", ["png-exif-orientation-6", "jpeg-two-exif-first-says-6", "webp-exif-orientation-6"])
def test_keep_metadata_still_uploads_upright(name: str) -> None:
    case = next(c for c in CASES if c.name == name)
    policy = ImagePolicy(keep_metadata=True)
    result = prepare(case.data, policy)
    assert isinstance(result, Prepared), result
    with Image.open(io.BytesIO(result.data)) as im:
        im.load()
        assert im.getexif().get(0x0112, 1) == 1  # the tag no longer asks for a rotation
        assert im.size == case.size
        assert is_red(im.convert("RGB").getpixel((W // 10, H // 10)))  # type: ignore[arg-type]


def test_one_byte_over_the_limit_keeps_every_pixel() -> None:
    data = f.jpeg(f.stored(1200, 900, 1, seed=3), quality=95)
    policy = ImagePolicy(max_bytes=len(data) - 1)
    result = prepare(data, policy)
    assert isinstance(result, Prepared), result
    assert (result.width, result.height) == (1200, 900) and "resized" not in result.actions
    assert len(result.data) <= policy.max_bytes
    # The same for a file that must be re-encoded anyway and lands 1 byte over at the policy's quality.
    png = f.png(f.stored(1200, 900, 1, seed=4))
    buf = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(buf, "JPEG", quality=90)
    policy = ImagePolicy(max_bytes=len(buf.getvalue()) - 1)
    result = prepare(png, policy)
    assert isinstance(result, Prepared) and (result.width, result.height) == (1200, 900), result


def test_size_shrinks_only_when_quality_cannot_fit() -> None:
    data = f.jpeg(f.stored(1200, 900, 1, seed=5), quality=95)
    policy = ImagePolicy(max_bytes=len(data) // 6)
    result = prepare(data, policy)
    assert isinstance(result, Prepared) and "resized" in result.actions and len(result.data) <= policy.max_bytes
    assert result.width * result.height > 1200 * 900 // 4  # shrunk by what the excess needs, not a DCT quarter


_IMPORT_PROBE = """
import warnings
import numpy, pyarrow  # third-party imports that add their own warning filters, whoever imports them
from PIL import Image
filters, limit = list(warnings.filters), Image.MAX_IMAGE_PIXELS
import pipeline, pipeline.images, pipeline.images.stage, pipeline.images.transform
assert Image.MAX_IMAGE_PIXELS == limit, Image.MAX_IMAGE_PIXELS
assert warnings.filters == filters, warnings.filters[:3]
from pipeline.images import prepare
prepare(b"GIF89a" + bytes(20))
assert Image.MAX_IMAGE_PIXELS == limit and warnings.filters == filters
assert "HEIF" not in Image.OPEN, "a HEIF opener was registered for every caller"
print("unchanged")
"""


def test_importing_pipeline_changes_no_process_wide_settings() -> None:
    done = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "unchanged", done.stderr


@pytest.mark.parametrize("size", [(12_000, 10_000), (60_000, 60_000)], ids=["pillow-warning-zone", "pillow-error-zone"])
def test_bombs_are_refused_by_the_policy_without_global_state(size: tuple[int, int]) -> None:
    buf = io.BytesIO()
    Image.new("P", (300, 300)).save(buf, "GIF")
    gif = bytearray(buf.getvalue())
    gif[6:10] = size[0].to_bytes(2, "little") + size[1].to_bytes(2, "little")
    limit = Image.MAX_IMAGE_PIXELS
    result = prepare(bytes(gif))  # 120 MP and 3,600 MP: over the default policy's 100 MP
    assert isinstance(result, Rejected) and result.reason == "too_many_pixels", result
    assert limit == Image.MAX_IMAGE_PIXELS
    small = prepare(bytes(gif), ImagePolicy(max_pixels=1_000))
    assert isinstance(small, Rejected) and small.reason == "too_many_pixels"


def test_the_proof_walks_a_stripped_file_again_and_skips_an_untouched_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass-through whose metadata was stripped is walked a second time, as the upload will read it; one with
    nothing to strip is the very bytes already walked, so the costly walk (a scan of all the image data) is
    not repeated."""
    walks: list[int] = []
    real = sniff.parse_jpeg

    def counted(data: bytes) -> object:
        walks.append(len(data))
        return real(data)

    monkeypatch.setattr(sniff, "parse_jpeg", counted)
    up = f.stored(W, H, 1)
    tagged = f.jpeg(up, exif=f.exif_block(1))
    out = prepare(tagged)
    assert isinstance(out, Prepared) and out.actions == ("passthrough", "stripped")
    assert walks == [len(tagged), len(out.data)]  # the stripped bytes were proved on their own
    walks.clear()
    plain = f.jpeg(up)
    out = prepare(plain)
    assert isinstance(out, Prepared) and out.actions == ("passthrough",) and out.data is plain
    assert walks == [len(plain)]
