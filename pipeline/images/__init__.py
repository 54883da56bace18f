"""The image stage: ``prepare(source, policy) -> Prepared | Rejected``.

The API takes JPEG, PNG or WebP files of at most 5 MB with both sides at least 256 px. Photo archives
hold everything else too. For each file, in this order:

1. **Reject** what cannot be made acceptable, with a stable ``reason`` (see ``REASONS``) and a human
   ``detail``: ``not_found``, ``unreadable`` (permission, a directory, not a regular file),
   ``too_large`` (bigger than ``policy.max_input_bytes``, checked with ``stat`` before reading),
   ``empty_file``, ``unsupported_format`` (nothing Pillow or pillow-heif reads: text, PDF, PSD...),
   ``corrupt`` (truncated or undecodable), ``too_many_pixels`` (decompression bombs, judged from the
   header before any decoding), ``too_small`` (a side under ``policy.min_side``; never upscaled).
2. **Pass through** JPEG/PNG/WebP files that already meet every rule, judged from a walk of the whole
   file (``sniff``; no pixel decoded): within ``max_bytes`` and ``max_side``, 8-bit RGB or grey (JPEG:
   1 or 3 components, baseline or progressive Huffman; PNG: colour types 0 and 2, no tRNS; WebP: no
   alpha), upright (EXIF orientation, read as Pillow reads it, 1 or absent), no ICC profile other than
   sRGB, not animated, and structurally complete. Metadata is removed by a whitelist, anywhere in the
   file, without touching the image data: JPEG keeps only the frame, tables, scans, DNL, the end marker
   and plain JFIF/Adobe segments (never a byte after the end marker); PNG keeps only image and colour
   chunks; WebP only image chunks, with the VP8X flags and RIFF size fixed. The output is then proved
   complete (walked again; PNG data inflated to its exact size; WebP decoded). Actions: ``passthrough``
   when the bytes are the source's, ``passthrough+stripped`` when something was removed.
3. **Transform** everything else into a JPEG (``transform``): colours converted to 8-bit sRGB (alpha
   flattened on white), first frame of animations, downscaled with JPEG DCT scaling first, orientation
   applied after the downscale, re-encoded at ``policy.jpeg_quality`` and fitted to ``max_bytes`` by the
   smallest step that works (quality, then size). Actions are a subset of ``reoriented``, ``converted``,
   ``resized``, in that order.

Nothing but the pixels leaves the machine unless ``policy.keep_metadata`` is set (then the EXIF stays,
and a rotated picture's EXIF no longer asks for a rotation). Importing this package changes no
process-wide setting: no Pillow limit, no warning filter, no registered opener (``opening``).
"""

from pipeline.images.common import REASONS
from pipeline.images.stage import prepare

__all__ = ["REASONS", "prepare"]
