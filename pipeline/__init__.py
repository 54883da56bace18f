"""thumbnail-ingest: bulk-load person photos into NAVER Cloud Media Intelligence.

Notebook use::

    from pipeline import ingest
    summary = ingest("photos.parquet", workspace="my-workspace")   # or a pandas DataFrame / pyarrow Table
    summary.results.to_pandas()

Inside a running event loop, ``await ingest_async(...)``.
"""

from importlib import metadata as _metadata

from pipeline.config import ApiSettings, ColumnMap, Credentials, Settings
from pipeline.errors import (
    ApiError,
    ConfigError,
    FatalApiError,
    IngestError,
    JournalMismatchError,
    ManifestError,
)
from pipeline.models import ImagePolicy, Prepared, Rejected, RowResult, Status, Summary
from pipeline.python_api import ingest, ingest_async, make_settings

try:
    __version__ = _metadata.version("thumbnail-ingest")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

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
