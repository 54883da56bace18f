"""Stage 2, fetch: a row's source bytes from a local file, ``s3://``, ``gs://`` or ``http(s)://``.

``SourceParser``/``parse_source`` turn a manifest cell into a ``SourceRef`` (or a ``Problem``);
``Fetcher`` fetches refs under the run's bounds (``FetchSettings``), answering ``Fetched`` or
``FetchRejected`` per source, ``stat`` answers a ``SourceStamp`` without the bytes; a store that refuses
everything has its rows rejected, and when every store the run reads from does, ``SourceAccessError`` (a
``FatalApiError``: exit 3) stops the run. ``ByteBudget`` hands out ``Lease``s: fetched bytes stay held until the
image stage releases them. ``open_remote_manifest`` downloads a remote manifest to a temporary file the
manifest reader can open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.lazy import exports

if TYPE_CHECKING:
    from pipeline.fetch.budget import ByteBudget, Lease
    from pipeline.fetch.fetcher import Fetcher
    from pipeline.fetch.limits import SourceAccessError
    from pipeline.fetch.manifest_file import is_remote_manifest, open_remote_manifest
    from pipeline.fetch.outcomes import Fetched, FetchRejected, FetchStats, SourceStamp
    from pipeline.fetch.refs import Problem, SourceParser, SourceRef, parse_source
    from pipeline.fetch.settings import FetchSettings

__all__ = [
    "ByteBudget",
    "FetchRejected",
    "FetchSettings",
    "FetchStats",
    "Fetched",
    "Fetcher",
    "Lease",
    "Problem",
    "SourceAccessError",
    "SourceParser",
    "SourceRef",
    "SourceStamp",
    "is_remote_manifest",
    "open_remote_manifest",
    "parse_source",
]

__getattr__, __dir__ = exports(
    __name__,
    {
        "ByteBudget": "pipeline.fetch.budget",
        "Lease": "pipeline.fetch.budget",
        "Fetcher": "pipeline.fetch.fetcher",
        "SourceAccessError": "pipeline.fetch.limits",
        "is_remote_manifest": "pipeline.fetch.manifest_file",
        "open_remote_manifest": "pipeline.fetch.manifest_file",
        "Fetched": "pipeline.fetch.outcomes",
        "FetchRejected": "pipeline.fetch.outcomes",
        "FetchStats": "pipeline.fetch.outcomes",
        "SourceStamp": "pipeline.fetch.outcomes",
        "Problem": "pipeline.fetch.refs",
        "SourceParser": "pipeline.fetch.refs",
        "SourceRef": "pipeline.fetch.refs",
        "parse_source": "pipeline.fetch.refs",
        "FetchSettings": "pipeline.fetch.settings",
    },
    globals(),
)
