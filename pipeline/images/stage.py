"""``prepare``: the image stage's one entry point (see the package docstring for the policy)."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

from pipeline.images import lossless, sniff
from pipeline.images.common import Reject, mb, px
from pipeline.images.opening import open_image
from pipeline.images.transform import transform
from pipeline.models import ImagePolicy, Prepared, Rejected

__all__ = ["prepare"]

_TYPES = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png"), "WEBP": ("image/webp", ".webp")}


def prepare(source: Path | bytes, policy: ImagePolicy | None = None) -> Prepared | Rejected:
    """Make ``source`` (a file path, or the file's bytes) acceptable to the thumbnail API, or say why not.

    Promises: never raises (any unexpected failure becomes ``Rejected("corrupt")``); a ``Prepared``
    always holds a complete JPEG, PNG or WebP picture of at most ``policy.max_bytes`` bytes, 8-bit RGB
    or greyscale, both sides at least ``policy.min_side``, long side within ``policy.max_side`` when set
    (unless that would break the minimum), upright as Pillow shows the source, and nothing of the
    source but what shows the picture unless ``policy.keep_metadata`` (then the EXIF stays, without an
    orientation that no longer applies). Pure: reads the file once and touches nothing else (no
    process-wide setting either), so it can run in any thread or process. ``source_sha256`` and
    ``source_bytes`` are of the bytes read.
    """
    policy = policy or ImagePolicy()
    try:
        data = _read(source, policy)
    except Reject as reject:
        return Rejected(reject.reason, reject.detail)
    except Exception as exc:  # the contract is "never raises": an odd OS error is still an answer
        return Rejected("unreadable", f"cannot read the file ({type(exc).__name__}: {exc})")
    size, digest = len(data), hashlib.sha256(data).hexdigest()
    try:
        return _prepare(data, policy, size, digest)
    except Reject as reject:
        return Rejected(reject.reason, reject.detail, size, digest)
    except MemoryError:
        return Rejected("too_many_pixels", "ran out of memory decoding it", size, digest)
    except Exception as exc:  # Pillow and codec libraries raise many types for damaged files
        message = str(exc)[:200]
        return Rejected("corrupt", f"cannot be decoded ({type(exc).__name__}: {message})", size, digest)


def _read(source: Path | bytes, policy: ImagePolicy) -> bytes:
    """The source's bytes, after the checks that need no reading (existence, type, size)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > policy.max_input_bytes:
            raise Reject("too_large", f"{mb(len(data))}; the limit for source files is {mb(policy.max_input_bytes)}")
    else:
        path = Path(source)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise Reject("not_found", f"no such file: {path}") from None
        except OSError as exc:
            raise Reject("unreadable", f"cannot access {path}: {exc.strerror or exc}") from None
        if stat.S_ISDIR(st.st_mode):
            raise Reject("unreadable", f"{path} is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):  # reading a FIFO or a device could block forever
            raise Reject("unreadable", f"{path} is not a regular file")
        if st.st_size > policy.max_input_bytes:
            raise Reject("too_large", f"{mb(st.st_size)}; the limit for source files is {mb(policy.max_input_bytes)}")
        try:
            with path.open("rb") as fh:
                data = fh.read(policy.max_input_bytes + 1)  # +1: notice a file that grew since stat
        except OSError as exc:
            raise Reject("unreadable", f"cannot read {path}: {exc.strerror or exc}") from None
        if len(data) > policy.max_input_bytes:
            raise Reject("too_large", f"more than {mb(policy.max_input_bytes)}, the limit for source files")
    if not data:
        raise Reject("empty_file", "the file is empty (0 bytes)")
    return data


def _prepare(data: bytes, policy: ImagePolicy, size: int, digest: str) -> Prepared:
    # The header's size is checked before Pillow sees the file: the decompression-bomb limit is the
    # policy's, per call, never Pillow's process-wide one.
    header = sniff.inspect(data)
    if header is not None and header.width and header.height:
        w, h = header.width, header.height
        if w * h > policy.max_pixels:
            raise Reject(
                "too_many_pixels",
                f"{px(w, h)} ({w * h / 1e6:.1f} MP); the limit is {policy.max_pixels / 1e6:.1f} MP",
            )
        if min(w, h) < policy.min_side:  # orientation only swaps the sides: the check holds before it
            raise Reject("too_small", f"{px(w, h)}; the minimum is {policy.min_side} px on each side")
        if not header.obstacles and (not policy.max_side or max(w, h) <= policy.max_side):
            out = data if policy.keep_metadata else sniff.stripped(data, header)
            if len(out) <= policy.max_bytes and sniff.prove(out, header, data):
                if policy.verify_pixels:
                    _verify(out)
                content_type, extension = _TYPES[header.format]
                actions = ("passthrough",) if out is data else ("passthrough", "stripped")
                return Prepared(out, header.format, content_type, extension, w, h, actions, size, digest)
        if (turned := _turned(data, header, policy)) is not None:
            tw, th = (h, w) if header.orientation >= 5 else (w, h)
            return Prepared(turned, "JPEG", "image/jpeg", ".jpg", tw, th, ("reoriented", "lossless"), size, digest)
    enc = transform(data, policy, header)
    return Prepared(enc.data, "JPEG", "image/jpeg", ".jpg", enc.width, enc.height, enc.actions, size, digest)


def _turned(data: bytes, header: sniff.Header, policy: ImagePolicy) -> bytes | None:
    """A JPEG whose only obstacle is its EXIF orientation, turned upright without re-encoding
    (``lossless.upright``) when it needs no resize and keeps no metadata; ``None`` when that does not apply or
    cannot be done perfectly (the decoder's path then re-encodes it). The output is walked like any
    pass-through: upright, complete, the sides turned, nothing but the picture, within ``max_bytes``."""
    w, h = header.width, header.height
    if (header.format != "JPEG" or header.obstacles != (f"EXIF orientation {header.orientation}",)
            or policy.keep_metadata or (policy.max_side and max(w, h) > policy.max_side)):
        return None
    turned = lossless.upright(data, header.orientation)
    if turned is None:
        return None
    try:
        again = sniff.inspect(turned)  # a walk of every segment and all the entropy-coded data
        if again is None or again.obstacles or (again.width, again.height) != ((h, w) if header.orientation >= 5
                                                                                else (w, h)):
            return None
        out = sniff.stripped(turned, again)
        if len(out) > policy.max_bytes or not sniff.prove(out, again, turned):
            return None
        if policy.verify_pixels:
            _verify(out)
    except Reject:
        return None  # an output that does not prove itself: the decoder's path says what the source is
    return out


def _verify(data: bytes) -> None:
    """Decode every pixel (``policy.verify_pixels``): damage the structural check cannot see."""
    try:
        with open_image(data) as im:
            im.load()
    except Reject:
        raise Reject("corrupt", "the image data is damaged") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise Reject("corrupt", f"the image data is damaged ({exc})") from None
