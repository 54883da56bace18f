"""Test-side access to the sample-image generator (which lives in ``pipeline.samples`` so the demo can
use it too). Import from here in tests: ``from corpus import make_jpeg, make_corpus``."""

from pipeline.samples import (
    GPS_MARKER,
    MAKE_MARKER,
    adobe_rgb_like_profile,
    make_bomb_png,
    make_corpus,
    make_image,
    make_jpeg,
    make_oriented_jpeg,
    make_png,
    make_webp,
    texture,
)

__all__ = [
    "GPS_MARKER",
    "MAKE_MARKER",
    "adobe_rgb_like_profile",
    "make_bomb_png",
    "make_corpus",
    "make_image",
    "make_jpeg",
    "make_oriented_jpeg",
    "make_png",
    "make_webp",
    "texture",
]
