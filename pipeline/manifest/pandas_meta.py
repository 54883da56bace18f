"""Pandas metadata that makes the results' integer columns come back as pandas' nullable ``Int64``.

A results integer column (``width``, ``height``, ``bytes``, ``attempts``) is empty for a rejected or failed row;
without a hint, ``Table.to_pandas()`` and ``pandas.read_parquet`` turn such a column into ``float64`` (``1920.0``,
``NaN``). pyarrow reads the ``pandas`` schema metadata (a Parquet file keeps it) and builds any column whose
``numpy_type`` names a pandas extension dtype with that dtype, so the hint needs no pandas here: the metadata
is plain JSON, and only the columns listed are affected (the input's own columns keep their types).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pyarrow as pa

__all__ = ["with_nullable_ints"]


def with_nullable_ints(schema: pa.Schema, names: Iterable[str]) -> pa.Schema:
    """``schema`` with ``pandas`` metadata asking for ``Int64`` in the named integer columns (other names and
    non-integer columns are left out); any other metadata is dropped (pandas' index notes of an input frame
    would describe that frame, not these rows)."""
    wanted = set(names)
    columns = [
        {"name": f.name, "field_name": f.name, "pandas_type": "int64", "numpy_type": "Int64", "metadata": None}
        for f in schema
        if f.name in wanted and pa.types.is_integer(f.type)
    ]
    if not columns:
        return schema.remove_metadata()
    meta = {"index_columns": [], "column_indexes": [], "columns": columns,
            "creator": {"library": "thumbnail-ingest"}}
    return schema.with_metadata({"pandas": json.dumps(meta)})
