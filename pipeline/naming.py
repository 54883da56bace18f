"""The file name sent to the API for a row (pure).

The server may echo the name into the ``thumbnailKey``, so it must be unique per row: by default it is the
source file's stem plus the row key (a digest of it when the key is the path itself). The extension always
follows the uploaded format.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePath

from pipeline.models import Prepared, Row

__all__ = ["upload_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f/\\]+")


def _safe(text: str, limit: int) -> str:
    return _UNSAFE.sub("_", text).strip("._")[:limit]


def upload_name(row: Row, prepared: Prepared) -> str:
    """``<stem>-<row key><ext>``, ASCII-safe and at most ~140 characters; with a ``file_name`` override, that
    name's stem (path separators and control characters removed) with the extension of the uploaded format."""
    if row.file_name:
        stem = _CONTROL.sub("_", PurePath(row.file_name.replace("\\", "/")).stem).strip() or "image"
        return f"{stem[:200]}{prepared.extension}"
    source_stem = PurePath(row.path.replace("\\", "/")).stem if row.path else ""
    stem = _safe(source_stem, 64) or "image"
    if row.key == row.path:  # keyed by its path: the stem says it already; a digest keeps folders apart
        tag = hashlib.sha256(row.key.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    else:
        tag = _safe(row.key, 64) or str(row.index)
    return f"{stem}-{tag}{prepared.extension}"
