"""thumbnail-ingest: bulk-load person photos into NAVER Cloud Media Intelligence.

Notebook use::

    from pipeline import ingest
    summary = ingest("photos.parquet", workspace="my-workspace")   # or a pandas DataFrame / pyarrow Table
    summary.results.to_pandas()

Inside a running event loop, ``await ingest_async(...)``.

The names below are imported on first use (PEP 562), so ``import pipeline`` and ``thumbnail-ingest --version``
stay cheap: the runner, aiohttp, pyarrow and Pillow load only when ``ingest`` or a settings class is touched.
"""

from __future__ import annotations

import importlib
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.config import ApiSettings, ColumnMap, Credentials, Settings
    from pipeline.errors import (
        ApiError,
        ConfigError,
        FatalApiError,
        IngestError,
        JournalMismatchError,
        ManifestError,
    )
    from pipeline.models import ImagePolicy, Prepared, Rejected, RowResult, Status
    from pipeline.python_api import ingest, ingest_async, make_settings
    from pipeline.summary import Summary

try:
    __version__ = _metadata.version("thumbnail-ingest")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

# Each public name and the module that defines it.
_LAZY = {
    "ApiSettings": "pipeline.config",
    "ColumnMap": "pipeline.config",
    "Credentials": "pipeline.config",
    "Settings": "pipeline.config",
    "ApiError": "pipeline.errors",
    "ConfigError": "pipeline.errors",
    "FatalApiError": "pipeline.errors",
    "IngestError": "pipeline.errors",
    "JournalMismatchError": "pipeline.errors",
    "ManifestError": "pipeline.errors",
    "ImagePolicy": "pipeline.models",
    "Prepared": "pipeline.models",
    "Rejected": "pipeline.models",
    "RowResult": "pipeline.models",
    "Status": "pipeline.models",
    "Summary": "pipeline.summary",
    "ingest": "pipeline.python_api",
    "ingest_async": "pipeline.python_api",
    "make_settings": "pipeline.python_api",
}

__all__ = [
    "ApiError",
    "ApiSettings",
    "ColumnMap",
    "ConfigError",
    "Credentials",
    "FatalApiError",
    "ImagePolicy",
    "IngestError",
    "JournalMismatchError",
    "ManifestError",
    "Prepared",
    "Rejected",
    "RowResult",
    "Settings",
    "Status",
    "Summary",
    "__version__",
    "ingest",
    "ingest_async",
    "make_settings",
]


def __getattr__(name: str) -> Any:
    """The public name ``name``, imported from its module on first access and kept in this module's globals
    (so the next access is a plain attribute); ``AttributeError`` for any other name."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's own names and every public name, the lazy ones included (for tab completion)."""
    return sorted(set(globals()) | set(__all__))
