"""Reading manifests: ``Manifest`` (``reader``: columns, ``scan``, ``row_batches`` of ``Row``s), ``sources``
(CSV, Parquet, Arrow tables, pandas DataFrames and Arrow streams as record batches), ``csv_types`` (a CSV's
int64 rule), ``pandas_meta`` (the pandas metadata kept for the results), ``row_keys`` (the per-row key hashes,
duplicate detection and its sentence, ``path_key``). Every path cell is parsed by ``fetch.SourceParser``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.lazy import exports

if TYPE_CHECKING:
    from pipeline.manifest.reader import NO_PATH_KEY, Manifest, ManifestInfo, RowBatch

__all__ = ["NO_PATH_KEY", "Manifest", "ManifestInfo", "RowBatch"]

__getattr__, __dir__ = exports(__name__, {
    "NO_PATH_KEY": "pipeline.manifest.reader",
    "Manifest": "pipeline.manifest.reader",
    "ManifestInfo": "pipeline.manifest.reader",
    "RowBatch": "pipeline.manifest.reader",
}, globals())
