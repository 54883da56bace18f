"""The image stage: ``prepare(source, policy) -> Prepared | Rejected``.

The API takes JPEG, PNG or WebP files of at most 5 MB with both sides at least 256 px. Photo archives
hold everything else too. For each file, in this order:

1. **Reject** what cannot be made acceptable, with a stable ``reason`` (see ``REASONS``) and a human
   ``detail``: ``not_found``, ``unreadable`` (permission, a directory, not a regular file),
   ``too_large`` (bigger than ``policy.max_input_bytes``, checked with ``stat`` before reading),
   ``empty_file``, ``unsupported_format`` (nothing Pillow or pillow-heif reads: text, PDF, PSD...),
   ``corrupt`` (truncated or undecodable), ``too_many_pixels`` (decompression bombs, judged from the
   header before any decoding), ``too_small`` (a side under ``policy.min_side``; never upscaled).
2. **Pass through** JPEG/PNG/WebP files that already meet every rule, judged from the headers alone
   (``sniff``): within ``max_bytes`` and ``max_side``, 8-bit RGB or grey (JPEG: 1 or 3 components,
   baseline or progressive Huffman; PNG: colour types 0 and 2, no tRNS; WebP: no alpha), upright (no
   EXIF orientation other than 1), no ICC profile other than sRGB, not animated, and structurally
   complete. Metadata is removed at the byte level without touching the image data: JPEG keeps APP0
   JFIF, APP2 ICC_PROFILE, APP14 Adobe and all non-APP segments and drops APP1 (EXIF, XMP), APP13
   (IPTC), COM, other APPn and anything after the end-of-image marker; PNG keeps only image and colour
   chunks; WebP drops EXIF/XMP chunks and fixes the VP8X flags and RIFF size. Actions: ``passthrough``
   when the bytes are the source's, ``passthrough+stripped`` when metadata was removed.
3. **Transform** everything else into a JPEG (``transform``): orientation applied, colours converted to
   8-bit sRGB (alpha flattened on white), first frame of animations, downscaled with JPEG DCT scaling
   first, re-encoded at ``policy.jpeg_quality`` and made to fit ``max_bytes``. Actions are a subset of
   ``reoriented``, ``converted``, ``resized``, in that order.

No EXIF/XMP location or camera metadata leaves the machine unless ``policy.keep_metadata`` is set.
Pillow's configuration (HEIF opener, decompression-bomb limit) is set once, when this package is imported.
"""

from pipeline.images.common import REASONS
from pipeline.images.stage import prepare

__all__ = ["REASONS", "prepare"]
