"""Lossless rotation (``images.lossless``): a JPEG whose only obstacle is its EXIF orientation is turned upright in
the DCT domain when libjpeg-turbo is on the machine and the turn is perfect; every other case, and a machine
without the library, takes the decoder's path. The first group needs the library (``.ci/run`` installs it)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image, ImageChops, ImageOps

from pipeline.images import lossless, prepare
from pipeline.models import ImagePolicy, Prepared
from pipeline.samples import make_jpeg, make_oriented_jpeg

needs_library = pytest.mark.skipif(not lossless.available(), reason="libjpeg-turbo's TurboJPEG library is absent")
INVERSE = {2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}


def pixels(data: bytes, *, upright: bool = False) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return (ImageOps.exif_transpose(im) if upright else im).convert("RGB")


def largest_difference(a: Image.Image, b: Image.Image) -> int:
    assert a.size == b.size
    return max(high for _, high in ImageChops.difference(a, b).getextrema())


@needs_library
@pytest.mark.parametrize("orientation", range(2, 9))
def test_an_orientation_only_jpeg_is_turned_without_re_encoding(orientation: int) -> None:
    source = make_oriented_jpeg(None, 480, 320, orientation, seed=orientation)  # sides in whole 16 px blocks
    out = prepare(source)
    assert isinstance(out, Prepared) and out.actions == ("reoriented", "lossless")
    assert (out.width, out.height) == (480, 320) and pixels(out.data).size == (480, 320)
    assert b"Exif" not in out.data and b"ICC_PROFILE" not in out.data  # only the picture leaves
    # What a viewer shows of the source, to the decoder's rounding (3-4 levels; a re-encode differs by 10-16).
    assert largest_difference(pixels(out.data), pixels(source, upright=True)) <= 6
    # No generation loss: turned back, the coefficients are the source's, so the decoded pixels are equal.
    back = lossless.upright(out.data, INVERSE[orientation])
    assert back is not None and pixels(back).tobytes() == pixels(source).tobytes()


@needs_library
@pytest.mark.parametrize("orientation", [2, 3, 4, 6, 7, 8])
def test_an_imperfect_turn_takes_the_decoders_path(orientation: int) -> None:
    """401 x 299 px in 16 px blocks: every turn but the transpose (5) would move a partial block."""
    out = prepare(make_oriented_jpeg(None, 401, 299, orientation, seed=orientation))
    assert isinstance(out, Prepared) and out.actions == ("reoriented",) and (out.width, out.height) == (401, 299)


@needs_library
def test_kept_metadata_a_resize_or_another_obstacle_take_the_decoders_path() -> None:
    source = make_oriented_jpeg(None, 480, 320, 6, seed=1)
    kept = prepare(source, ImagePolicy(keep_metadata=True))
    assert isinstance(kept, Prepared) and kept.actions == ("reoriented",)  # its other EXIF stays: re-encoded
    smaller = prepare(source, ImagePolicy(max_side=400))
    assert isinstance(smaller, Prepared) and "lossless" not in smaller.actions and max(smaller.width,
                                                                                          smaller.height) == 400
    cmyk = prepare(make_jpeg(None, 480, 320, mode="CMYK", seed=2))
    assert isinstance(cmyk, Prepared) and "lossless" not in cmyk.actions


@needs_library
def test_the_turn_is_the_same_from_many_threads() -> None:
    sources = [make_oriented_jpeg(None, 480, 320, 2 + i % 7, seed=i) for i in range(14)]
    serial = [lossless.upright(s, 2 + i % 7) for i, s in enumerate(sources)]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda i: lossless.upright(sources[i], 2 + i % 7), range(14))) == serial
    assert all(s is not None for s in serial)


def test_upright_never_raises_and_says_none_when_it_cannot() -> None:
    assert lossless.upright(b"not a jpeg at all", 6) is None
    assert lossless.upright(make_jpeg(None, 320, 320)[:200], 6) is None  # cut short
    assert lossless.upright(make_jpeg(None, 320, 320), 1) is None  # nothing to turn
    assert lossless.upright(make_jpeg(None, 320, 320), 9) is None


@pytest.fixture
def library_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(lossless.ENV, "off")
    lossless._library.cache_clear()
    yield
    monkeypatch.undo()
    lossless._library.cache_clear()


def test_without_the_library_every_turn_takes_the_decoders_path(library_off: None) -> None:
    assert not lossless.available()
    out = prepare(make_oriented_jpeg(None, 480, 320, 6, seed=3))
    assert isinstance(out, Prepared) and out.actions == ("reoriented",) and (out.width, out.height) == (480, 320)


@needs_library
def test_damaged_data_gets_the_same_answer_with_or_without_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    source = bytearray(make_oriented_jpeg(None, 480, 320, 6, seed=9))
    damaged = []
    for at in (len(source) // 3, len(source) // 2, len(source) - 40):
        copy = bytearray(source)
        copy[at:at + 24] = bytes(range(24))  # garbage in the entropy-coded data
        damaged.append(bytes(copy))
    damaged.append(bytes(source[: len(source) * 2 // 3]) + b"\xff\xd9")  # cut short, then ended
    with_library = [prepare(d) for d in damaged]
    monkeypatch.setenv(lossless.ENV, "off")
    lossless._library.cache_clear()
    try:
        without = [prepare(d) for d in damaged]
    finally:
        monkeypatch.delenv(lossless.ENV)
        lossless._library.cache_clear()

    def answer(r: object) -> str:
        return r.action.replace("+lossless", "") if isinstance(r, Prepared) else str(getattr(r, "reason", r))

    assert [answer(r) for r in with_library] == [answer(r) for r in without]
