"""The mixed sample archive (every kind of file real photo archives hold, with the outcome each must get),
for the demo and the tests; built from ``samples``' generators."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.images import lossless
from pipeline.samples import make_bomb_png, make_image, make_jpeg, make_oriented_jpeg, make_png, make_webp

__all__ = ["make_corpus"]


def make_corpus(directory: str | Path, *, scale: float = 1.0) -> list[tuple[Path, str]]:
    """Write a mixed archive (the kinds of files real photo archives hold) into ``directory``.

    Returns ``(path, expected)`` pairs: ``expected`` is the ``Prepared.action`` (``passthrough``,
    ``passthrough+stripped``, ``reoriented`` (``reoriented+lossless`` with libjpeg-turbo), ``converted``, ...)
    or the ``Rejected.reason`` that ``pipeline.images.prepare`` gives the file under the default
    ``ImagePolicy``. ``scale`` shrinks or grows the photo sizes (the demo uses small ones); rejections do not
    depend on it.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)

    def px(n: int) -> int:
        return max(300, int(n * scale))

    w, h = px(1600), px(1200)
    # Sides in whole 16 px blocks, so the turn is perfect: turned without re-encoding where libjpeg-turbo is.
    turned = "reoriented+lossless" if lossless.available() else "reoriented"
    tw, th = w - w % 16, h - h % 16
    specs: list[tuple[str, str, Callable[[Path], object]]] = [
        ("portrait.jpg", "passthrough", lambda p: make_jpeg(p, h, w, seed=1)),
        ("grey.jpg", "passthrough", lambda p: make_jpeg(p, w, h, mode="L", seed=2)),
        (
            "phone_gps.jpg",
            "passthrough+stripped",
            lambda p: make_jpeg(p, w, h, exif_gps=True, xmp=True, seed=3),
        ),
        ("rotated.jpg", turned, lambda p: make_oriented_jpeg(p, tw, th, 6, seed=4)),
        ("cmyk.jpg", "converted", lambda p: make_jpeg(p, w, h, mode="CMYK", seed=5)),
        ("scan.png", "passthrough", lambda p: make_png(p, w, h, seed=6)),
        ("scan_text.png", "passthrough+stripped", lambda p: make_png(p, w, h, text=True, seed=7)),
        ("logo.png", "converted", lambda p: make_png(p, w, h, mode="RGBA", seed=8)),
        ("deep.png", "converted", lambda p: make_png(p, w, h, mode="I;16", seed=9)),
        ("photo.webp", "passthrough", lambda p: make_webp(p, w, h, seed=10)),
        ("photo_meta.webp", "passthrough+stripped", lambda p: make_webp(p, w, h, exif_gps=True, seed=11)),
        ("iphone.heic", "converted", lambda p: make_image(p, w, h, "HEIF", quality=80, seed=12)),
        ("old.tif", "converted", lambda p: make_image(p, w, h, "TIFF", seed=13)),
        ("old.bmp", "converted", lambda p: make_image(p, w, h, "BMP", seed=14)),
        ("clipart.gif", "converted", lambda p: make_image(p, w, h, "GIF", mode="P", seed=15)),
        ("tiny.jpg", "too_small", lambda p: make_jpeg(p, 200, 180, seed=16)),
        ("truncated.jpg", "corrupt", lambda p: p.write_bytes(make_jpeg(None, w, h, seed=17)[: -w * 20])),
        ("empty.jpg", "empty_file", lambda p: p.write_bytes(b"")),
        ("notes.jpg", "unsupported_format", lambda p: p.write_bytes(b"meeting notes, not a photo\n" * 20)),
        ("bomb.png", "too_many_pixels", make_bomb_png),
        ("folder.jpg", "unreadable", lambda p: p.mkdir(exist_ok=True)),
        ("missing.jpg", "not_found", lambda p: None),
    ]
    out: list[tuple[Path, str]] = []
    for name, expected, build in specs:
        path = root / name
        build(path)
        out.append((path, expected))
    return out
