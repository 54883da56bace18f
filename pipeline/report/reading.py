"""Read a results manifest (Parquet or CSV) in record batches, only the columns the report uses.

Memory stays flat in the file's size: Parquet is read with ``ParquetFile.iter_batches`` and CSV with
``pyarrow.csv.open_csv``, both projected to the report's columns, so a million-row file with wide input
columns costs one batch of a dozen columns at a time (for Parquet, one row group of those columns: the
results writer writes one per batch; a file written in one huge row group costs that group's columns).
Every pyarrow or OS error becomes a one-sentence ``ConfigError``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from pipeline.errors import ConfigError
from pipeline.manifest.sources import arrow_message

__all__ = ["BATCH_ROWS", "ColumnNames", "ResultsReader"]

BATCH_ROWS = 65_536
_CSV_BLOCK = 1 << 20
"""The CSV reader holds several blocks ahead: 1 MiB blocks peak near 35 MB of Arrow memory, 4 MiB ones near
130 MB (measured on a million rows). A results row longer than a block (never written by this tool: its
details are clipped) is reported as unreadable."""
_TIMESTAMP = pa.timestamp("us", tz="UTC")
_TYPES = {"width": pa.int64(), "height": pa.int64(), "bytes": pa.int64(), "uploaded_at": _TIMESTAMP,
          "attached_at": _TIMESTAMP}
"""How the report wants the typed results columns, whatever the file stores (CSV holds only text)."""


@dataclass(frozen=True, slots=True)
class ColumnNames:
    """The input columns the report reads besides the results columns (names as in the manifest)."""

    path: str = "path"
    id: str = "id"
    person: str = "person"


_RESULTS = ("status", "reason", "detail", "action", "width", "height", "bytes", "uploaded_at", "duplicate_of",
            "person_id", "attached_at", "input_person_id", "run_id", "this_run")


class ResultsReader:
    """One results file: its column names, and its rows as batches of the columns the report uses.

    Raises ``ConfigError`` when the file cannot be opened, is not Parquet or CSV, or has no ``status`` column.
    """

    def __init__(self, path: Path, names: ColumnNames) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".parquet", ".pq", ".csv"):
            raise ConfigError(f"The results file {self.path} must end in .parquet or .csv.")
        self.kind = "csv" if suffix == ".csv" else "parquet"
        try:
            if self.kind == "parquet":
                with pq.ParquetFile(self.path) as pf:
                    self.columns: tuple[str, ...] = tuple(pf.schema_arrow.names)
            else:
                with self.path.open(encoding="utf-8", newline="") as fh:
                    header = next(csv.reader(line.removeprefix("\ufeff") for line in fh), None)
                self.columns = tuple(header or ())
        except (OSError, UnicodeDecodeError, csv.Error, pa.ArrowException) as exc:
            raise ConfigError(f"The results file {self.path} cannot be read: {_message(exc)}.") from exc
        if "status" not in self.columns:
            raise ConfigError(f"The file {self.path} is not a results manifest: it has no status column.")
        wanted = [*_RESULTS, names.path, names.id, names.person]
        self.used: tuple[str, ...] = tuple(dict.fromkeys(c for c in wanted if c in self.columns))

    def has(self, column: str) -> bool:
        """Whether the file has ``column``."""
        return column in self.columns

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows in file order, in batches of at most ``BATCH_ROWS``, with the columns of ``used`` (text
        columns as strings, ``width``/``height``/``bytes`` as int64, timestamps as UTC microseconds)."""
        try:
            if self.kind == "parquet":
                with pq.ParquetFile(self.path) as pf:
                    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=list(self.used)):
                        yield _typed(batch)
            else:
                types = {c: _TYPES.get(c, pa.string()) for c in self.used}
                reader = pcsv.open_csv(
                    self.path,
                    read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK),
                    convert_options=pcsv.ConvertOptions(column_types=types, include_columns=list(self.used),
                                                        strings_can_be_null=True, quoted_strings_can_be_null=False),
                )
                for batch in reader:
                    yield _typed(batch)
        except (OSError, pa.ArrowException) as exc:
            raise ConfigError(f"The results file {self.path} could not be read to the end: {_message(exc)}.") from exc


def _typed(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with each column cast to the type the report expects (a file written by another tool may
    hold ints as int32 or ids as integers)."""
    arrays = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        want = _TYPES.get(name, pa.string())
        arrays.append(column if column.type == want else column.cast(want))
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return arrow_message(exc) if isinstance(exc, Exception) else type(exc).__name__
