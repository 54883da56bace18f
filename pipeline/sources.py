"""Where manifest batches come from: a CSV or Parquet file streamed from disk, or an in-memory table.

``open_source`` checks only what is cheap (extension, readability, header or schema) and returns a
factory that streams the batches anew on every call. CSV cells are all read as text, empty cells as NULL;
a CSV row longer than the read block restarts the stream with a bigger block (up to ``MAX_BLOCK_SIZE``)
without handing any row on twice. Every pyarrow or OS error becomes a one-sentence ``ManifestError``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from pipeline.errors import ManifestError

__all__ = [
    "CSV_SUFFIXES",
    "MAX_BLOCK_SIZE",
    "PARQUET_SUFFIXES",
    "BatchFactory",
    "arrow_message",
    "open_source",
    "rechunk",
]

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
MAX_BLOCK_SIZE = 16 << 20
"""Largest CSV block tried (a block must hold a whole row). A bigger row is almost always an unclosed
quote swallowing the rest of the file, so it is refused rather than read: pyarrow's reader peaks at
about 8 blocks of memory (16 MiB blocks: ~150 MB; 64 MiB blocks were measured at ~530 MB)."""

BatchFactory = Callable[[], Iterator[pa.RecordBatch]]


def arrow_message(exc: Exception) -> str:
    """The first line of a pyarrow/OS error, at most 200 characters (they can quote whole rows)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def rechunk(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """The same rows in order, in batches of at most ``size`` rows."""
    for batch in batches:
        for offset in range(0, batch.num_rows, size):  # zero-copy slices; empty batches vanish
            yield batch.slice(offset, size) if batch.num_rows > size else batch


def open_source(source: Any, *, block_size: int, batch_size: int) -> tuple[str, pa.Schema, BatchFactory, str]:
    """``(name, schema, batches, base folder)`` for a path, a pyarrow Table or a pandas DataFrame."""
    if isinstance(source, pa.Table):
        table = source
        return "<pyarrow.Table>", table.schema, lambda: iter(table.to_batches()), str(Path.cwd())
    if any(c.__name__ == "DataFrame" and c.__module__.startswith("pandas") for c in type(source).__mro__):
        try:  # pyarrow imports pandas itself, only now: pandas stays optional
            frame = pa.Table.from_pandas(source, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            message = arrow_message(exc)
            raise ManifestError(f"The DataFrame cannot be converted to Arrow: {message}.") from exc
        frame = frame.replace_schema_metadata(None)  # pandas' index notes describe the frame, not the rows
        return "<pandas.DataFrame>", frame.schema, lambda: iter(frame.to_batches()), str(Path.cwd())
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        schema, factory = _open_file(path, str(source), block_size, batch_size)
        return str(source), schema, factory, str(path.parent.absolute())
    raise ManifestError(
        "A manifest must be a .csv or .parquet path, a pyarrow Table or a pandas DataFrame; "
        f"got {type(source).__name__}."
    )


def _open_file(path: Path, name: str, block_size: int, batch_size: int) -> tuple[pa.Schema, BatchFactory]:
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        got = repr(suffix) if suffix else "no extension"
        raise ManifestError(f"The manifest {name} must end in .csv, .parquet or .pq; got {got}.")
    if path.is_dir():
        raise ManifestError(f"The manifest {name} is a folder, not a file.")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ManifestError(f"The manifest {name} cannot be opened: {exc.strerror or exc}.") from exc
    if suffix in PARQUET_SUFFIXES:
        try:
            with pq.ParquetFile(path) as pf:
                schema = pf.schema_arrow
        except (pa.ArrowException, OSError) as exc:
            message = arrow_message(exc)
            raise ManifestError(f"The manifest {name} is not a readable Parquet file: {message}.") from exc
        return schema, lambda: _parquet_batches(path, name, batch_size)
    try:
        with open(path, "rb") as fh:
            # Decode line by line: csv pulls only the header's lines, so bad bytes further down are
            # reported by the streaming reader with a row number, not blamed on the header.
            lines = (line.decode("utf-8") for line in fh)
            header = next(csv.reader(line.removeprefix("\ufeff") for line in lines), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"The manifest {name} has no readable CSV header line: {exc}.") from exc
    if not header:
        raise ManifestError(f"The manifest {name} is empty: a CSV manifest needs a header line.")
    schema = pa.schema([pa.field(column, pa.string()) for column in header])
    return schema, lambda: _csv_batches(path, name, header, block_size)


def _parquet_batches(path: Path, name: str, batch_size: int) -> Iterator[pa.RecordBatch]:
    try:
        with pq.ParquetFile(path) as pf:
            yield from pf.iter_batches(batch_size=batch_size)
    except (pa.ArrowException, OSError) as exc:
        message = arrow_message(exc)
        raise ManifestError(f"The manifest {name} could not be read to the end: {message}.") from exc


def _csv_batches(path: Path, name: str, header: list[str], block_size: int) -> Iterator[pa.RecordBatch]:
    emitted = 0
    convert = pcsv.ConvertOptions(column_types={c: pa.string() for c in header}, strings_can_be_null=True)
    # Quoted newlines are legal CSV; a manifest with a free-text column may well have them.
    parse = pcsv.ParseOptions(newlines_in_values=True)
    while True:
        skip = emitted  # after a restart with a bigger block, rows already handed on are re-read, not re-sent
        try:
            read = pcsv.ReadOptions(block_size=block_size)
            reader = pcsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
            with reader:
                for batch in reader:
                    if skip >= batch.num_rows:
                        skip -= batch.num_rows
                        continue
                    batch, skip = batch.slice(skip), 0
                    emitted += batch.num_rows
                    yield batch
            return
        except pa.ArrowInvalid as exc:
            straddling = "straddl" in str(exc)  # pyarrow's "straddling object straddles two block boundaries"
            if straddling and block_size < MAX_BLOCK_SIZE:
                block_size = min(block_size * 4, MAX_BLOCK_SIZE)
                continue
            if straddling:
                raise ManifestError(
                    f"The manifest {name} has a row over {MAX_BLOCK_SIZE >> 20} MiB after its first "
                    f"{_rows(emitted)} (an unclosed quote?); fix the file."
                ) from exc
            raise _read_error(name, emitted, exc) from exc
        except (pa.ArrowException, OSError) as exc:
            raise _read_error(name, emitted, exc) from exc


def _rows(n: int) -> str:
    return "row" if n == 1 else f"{n} rows"


def _read_error(name: str, rows: int, exc: Exception) -> ManifestError:
    message = arrow_message(exc)
    return ManifestError(f"The manifest {name} cannot be read beyond its first {_rows(rows)}: {message}.")
