"""The one type rule of a CSV manifest: a column whose every non-empty cell is a canonical integer that fits
int64 is int64; every other column stays text (see ``manifests/README.md``)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["IntColumns", "canonical_ints"]

_CANONICAL_INT = r"^(0|-?[1-9][0-9]{0,18})$"
"""An integer exactly as ``str(int)`` writes it (no ``+``, no leading zero, no ``-0``, no spaces), so the
int64 value and the cell's text are one and the same; 19 digits may still overflow, which the cast catches."""


def canonical_ints(column: pa.Array) -> pa.Array | None:
    """``column`` (text) as int64 when every non-empty cell is a canonical integer that fits, else ``None``."""
    if column.null_count == len(column):
        return pa.nulls(len(column), pa.int64())
    if not pc.all(pc.match_substring_regex(column, _CANONICAL_INT)).as_py():
        return None
    try:
        ints: pa.Array = pc.cast(column, pa.int64())
    except pa.ArrowInvalid:  # 19 digits past int64's range
        return None
    return ints


class IntColumns:
    """The CSV type rule, fed one text batch at a time: a column whose every non-empty cell is a canonical
    integer that fits int64 (and that has at least one such cell) is int64; every other column stays text."""

    def __init__(self, schema: pa.Schema) -> None:
        self._schema = schema
        self._candidates = set(range(len(schema)))
        self._filled: set[int] = set()

    def feed(self, batch: pa.RecordBatch) -> None:
        """Look at one more batch of the text columns."""
        for i in tuple(self._candidates):
            column = batch.column(i)
            if canonical_ints(column) is None:
                self._candidates.discard(i)
            elif column.null_count < len(column):
                self._filled.add(i)

    def schema(self) -> pa.Schema:
        """The schema with the int64 columns found in all the batches fed so far."""
        ints = self._candidates & self._filled
        return pa.schema([f.with_type(pa.int64()) if i in ints else f for i, f in enumerate(self._schema)])
