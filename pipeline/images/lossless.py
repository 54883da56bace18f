"""Lossless rotation of a JPEG in the DCT domain (as ``jpegtran -perfect -copy none`` does), through the
TurboJPEG API of libjpeg-turbo when the system has it; ``upright`` answers ``None`` otherwise, and the image stage
decodes and re-encodes as before.

Why here and not in a Python binding: PyTurboJPEG, the maintained binding, has no rotation among its methods,
and its 2.x releases need libjpeg-turbo 3, which Debian 12 does not ship; the call needed is one function of the
TurboJPEG API that has been stable since libjpeg-turbo 1.2 (``tjTransform``), so it is bound here with ctypes.
The library is the optional dependency: ``apt install libturbojpeg0`` (Debian, Ubuntu), ``brew install
jpeg-turbo`` (macOS); ``THUMBNAIL_INGEST_TURBOJPEG`` names a library file to use instead, or ``off``.

A transform is used only when it is *perfect* (``TJXOPT_PERFECT``: no partial block would have to move to an
edge it cannot be at), so the output shows every pixel of the source, turned; it copies no marker
(``TJXOPT_COPYNONE``: no EXIF, no ICC profile, no comment), so only the picture leaves the machine. The DCT
coefficients are the source's, moved and sign-flipped, so there is no generation loss (turned back, the picture
decodes to exactly the source's pixels); decoded, it differs from the source decoded and then turned by a few
levels at most, where the decoder's integer inverse DCT and chroma upsampling round the other way.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

__all__ = ["available", "upright"]

ENV = "THUMBNAIL_INGEST_TURBOJPEG"

# tjtransform operations (turbojpeg.h): the one that makes each EXIF orientation upright, as Pillow's
# ``ImageOps.exif_transpose`` does (TJXOP_ROT90 turns clockwise).
_OP_OF = {2: 1, 3: 6, 4: 2, 5: 3, 6: 5, 7: 4, 8: 7}  # HFLIP, ROT180, VFLIP, TRANSPOSE, ROT90, TRANSVERSE, ROT270
_PERFECT, _COPYNONE = 1, 64
_STOP_ON_WARNING = 8192  # TJFLAG_STOPONWARNING: damaged entropy data is an error, not a picture with a grey band


class _Region(ctypes.Structure):
    _fields_ = (("x", ctypes.c_int), ("y", ctypes.c_int), ("w", ctypes.c_int), ("h", ctypes.c_int))


class _Transform(ctypes.Structure):
    _fields_ = (("r", _Region), ("op", ctypes.c_int), ("options", ctypes.c_int), ("data", ctypes.c_void_p),
                ("customFilter", ctypes.c_void_p))


class _Library:
    """The loaded library's four functions."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.init = lib.tjInitTransform
        self.init.restype, self.init.argtypes = ctypes.c_void_p, []
        self.transform = lib.tjTransform
        self.transform.restype = ctypes.c_int
        self.transform.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_int,
                                   ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)), ctypes.POINTER(ctypes.c_ulong),
                                   ctypes.POINTER(_Transform), ctypes.c_int]
        self.free = lib.tjFree
        self.free.restype, self.free.argtypes = None, [ctypes.c_void_p]
        self.destroy = lib.tjDestroy
        self.destroy.restype, self.destroy.argtypes = ctypes.c_int, [ctypes.c_void_p]


@functools.cache
def _library() -> _Library | None:
    """The TurboJPEG library, loaded once per process; ``None`` when it is absent (or switched off)."""
    chosen = os.environ.get(ENV, "")
    if chosen.lower() == "off":
        return None
    name = chosen or ctypes.util.find_library("turbojpeg") or "libturbojpeg.so.0"
    try:
        return _Library(ctypes.CDLL(name))
    except (OSError, AttributeError):  # not installed, or a library without the TurboJPEG API
        return None


def available() -> bool:
    """Whether lossless rotation can be done in this process."""
    return _library() is not None


def upright(data: bytes, orientation: int) -> bytes | None:
    """The JPEG ``data`` turned upright for EXIF ``orientation`` (2..8) in the DCT domain, with no marker of the
    source; ``None`` when that cannot be done losslessly (no library, an orientation of 1 or out of range, a
    transform that would not be perfect, data the library refuses). Never raises; thread-safe."""
    op = _OP_OF.get(orientation)
    lib = _library()
    if op is None or lib is None:
        return None
    handle = lib.init()  # one per call: a handle is not thread-safe, and making one costs microseconds
    if not handle:
        return None
    transform = _Transform(_Region(0, 0, 0, 0), op, _PERFECT | _COPYNONE, None, None)
    out = ctypes.POINTER(ctypes.c_ubyte)()
    size = ctypes.c_ulong(0)
    try:
        if lib.transform(handle, data, len(data), 1, ctypes.byref(out), ctypes.byref(size),
                         ctypes.byref(transform), _STOP_ON_WARNING) != 0:
            return None  # imperfect, or damaged data: the decoder's path says what it is
        return ctypes.string_at(out, size.value)
    finally:
        if out:
            lib.free(out)
        lib.destroy(handle)
