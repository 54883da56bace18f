"""Shared pieces of the image stage: reason codes, the rejection exception, detail wording, ``Header``."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.reasons import IMAGE_REASONS

__all__ = [
    "READABLE",
    "REASONS",
    "Header",
    "Reject",
    "identify",
    "is_text",
    "mb",
    "merge_spans",
    "px",
]

REASONS: tuple[str, ...] = IMAGE_REASONS
"""Every ``Rejected.reason`` that ``prepare`` can return (the registry's ``image`` codes, ``pipeline.reasons``).
Stable: results manifests are queried by them."""


_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG", "PNG"),
    (8, b"WEBP", "WebP"),
    (0, b"GIF8", "GIF"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"BM", "BMP"),
    (4, b"ftypheic", "HEIC"),
    (4, b"ftypheix", "HEIC"),
    (4, b"ftypmif1", "HEIF"),
    (4, b"ftypavif", "AVIF"),
    (0, b"%PDF", "PDF"),
    (0, b"8BPS", "Photoshop (PSD)"),
    (0, b"PK\x03\x04", "ZIP"),
    (0, b"\x00\x00\x00\x0cjP", "JPEG 2000"),
    (0, b"<svg", "SVG"),
    (0, b"<?xml", "XML"),
)
READABLE = frozenset({"JPEG", "PNG", "WebP", "GIF", "TIFF", "BMP", "HEIC", "HEIF", "AVIF"})
"""Kinds that ``prepare`` decodes: if Pillow cannot open one of these, the file is damaged, not foreign."""


def identify(data: bytes) -> str | None:
    """The file kind its magic bytes announce (``JPEG``, ``PDF``...), or ``None``; for detail messages."""
    return next((name for at, magic, name in _MAGIC if data[at : at + len(magic)] == magic), None)


def is_text(data: bytes) -> bool:
    """Whether the first 512 bytes read as UTF-8 text without control characters."""
    head = data[:512]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(b >= 0x20 or b in b"\t\r\n" for b in head)


class Reject(Exception):
    """Raised inside the stage to stop work on one image; ``prepare`` turns it into ``Rejected``.

    It never escapes ``prepare``; it exists so that deep helpers can give up with a precise reason.
    """

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def px(width: int, height: int) -> str:
    """``4032x3024 px``."""
    return f"{width}x{height} px"


def mb(n: int) -> str:
    """A byte count for humans: ``5.00 MB (5000000 bytes)``; MB means 10**6 bytes, as the API docs do."""
    return f"{n / 1e6:.2f} MB ({n} bytes)"


@dataclass(frozen=True, slots=True)
class Header:
    """What the container says, from a walk of the whole file but without decoding a pixel."""

    format: str
    """``JPEG``, ``PNG`` or ``WEBP``."""
    width: int
    height: int
    """Stored size (before EXIF orientation, which only swaps the sides)."""
    obstacles: tuple[str, ...]
    """Why the file cannot be uploaded as it is, in words (``EXIF orientation 6``...); empty if it can."""
    keep: tuple[tuple[int, int], ...]
    """Byte spans that make up the picture without any metadata (a whitelist of what shows it; for WebP
    the chunks after the RIFF header, reassembled by ``sniff.stripped``)."""
    feed: tuple[tuple[int, int], ...]
    """Byte spans to hand to the decoder: the file without the metadata a decoder could choke on (PNG
    text chunks past Pillow's limits), everything else as it is."""
    orientation: int = 1
    """The EXIF orientation, 1..8, as Pillow reads it."""


def merge_spans(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Coalesce adjacent spans, so an untouched file is exactly ``((0, len),)``."""
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and merged[-1][1] == a:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return tuple(merged)
