"""thumbnail-ingest: bulk-load person photos into NAVER Cloud Media Intelligence.

Notebook use::

    from pipeline import ingest
    summary = ingest("photos.parquet", workspace="my-workspace")   # or a pandas DataFrame / pyarrow Table
    summary.results.to_pandas()

Inside a running event loop, ``await ingest_async(...)``.
"""

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
    "ingest",
    "ingest_async",
    "make_settings",
]
