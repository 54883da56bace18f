"""Where manifest batches come from: a CSV/TSV (plain or gzip) or Parquet file streamed from disk, or an in-memory
table.

``open_source`` checks only what is cheap (extension, readability, header or schema, column names) and returns a
``Source`` whose ``batches`` streams the rows anew on every call. CSV rules: leading blank lines are skipped; a
header line without commas but with tabs, semicolons or pipes names its delimiter (``.tsv`` is always tab); every
cell is read as text and only an empty cell is missing (``NA``, ``null``, ``NaN`` stay text); ``IntColumns``
finds the columns that are int64 (see ``manifests/README.md``). A CSV row longer than the read block restarts the
stream with a bigger block (up to ``MAX_BLOCK_SIZE``) without handing any row on twice. Every pyarrow or OS error
becomes a one-sentence ``ManifestError``.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from pipeline.errors import ManifestError
from pipeline.manifest.csv_types import IntColumns, canonical_ints

__all__ = [
    "CSV_SUFFIXES",
    "MAX_BLOCK_SIZE",
    "PARQUET_SUFFIXES",
    "BatchFactory",
    "IntColumns",
    "Source",
    "arrow_message",
    "canonical_ints",
    "open_source",
    "rechunk",
]

CSV_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
MAX_BLOCK_SIZE = 16 << 20
"""Largest CSV block tried (a block must hold a whole row). A bigger row is almost always an unclosed
quote swallowing the rest of the file, so it is refused rather than read: pyarrow's reader peaks at
about 8 blocks of memory (16 MiB blocks: ~150 MB; 64 MiB blocks were measured at ~530 MB)."""

_CONVERT = {
    ".xlsx": ("an Excel workbook", "pandas.read_excel({name!r})"),
    ".xls": ("an Excel workbook", "pandas.read_excel({name!r})"),
    ".json": ("a JSON file", "pandas.read_json({name!r})"),
    ".jsonl": ("a JSON-lines file", "pandas.read_json({name!r}, lines=True)"),
    ".ndjson": ("a JSON-lines file", "pandas.read_json({name!r}, lines=True)"),
}
_SNIFFED = ("\t", ";", "|")
BatchFactory = Callable[[], Iterator[pa.RecordBatch]]


@dataclass(frozen=True, slots=True)
class Source:
    """An opened manifest input: ``schema`` as read (CSV: every column text, before ``IntColumns``)."""

    name: str
    schema: pa.Schema
    batches: BatchFactory
    base: str
    """The folder relative paths resolve against when no root is given."""
    csv: bool
    """Whether the column types are still to be inferred (``IntColumns``)."""


def arrow_message(exc: Exception) -> str:
    """The first line of a pyarrow/OS error, at most 200 characters (they can quote whole rows)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def rechunk(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """The same rows in order, in batches of at most ``size`` rows."""
    for batch in batches:
        for offset in range(0, batch.num_rows, size):  # zero-copy slices; empty batches vanish
            yield batch.slice(offset, size) if batch.num_rows > size else batch


def _check_names(name: str, names: list[str]) -> None:
    counts = Counter(names)
    repeated = [column for column in names if counts[column] > 1]
    if not repeated:
        return
    column = repeated[0]
    places = [str(i + 1) for i, n in enumerate(names) if n == column]
    where = ", ".join(places[:-1]) + " and " + places[-1]
    what = "with an empty name" if column == "" else f"named {column!r}"
    raise ManifestError(
        f"The manifest {name} has {len(places)} columns {what} (columns {where}, counted from 1); "
        "give every column its own name."
    )


def _refusal(source: Any) -> str:
    kind = type(source).__name__
    hint = ""
    if isinstance(source, (list, tuple)) and source and all(isinstance(r, dict) for r in source):
        hint = " (rows as dicts: pass pyarrow.Table.from_pylist(rows))"
    elif isinstance(source, dict):
        hint = " (columns as a dict: pass pyarrow.table(columns))"
    return ("A manifest must be a .csv, .tsv or .parquet path, a pyarrow Table, a pandas DataFrame or a table "
            f"with the Arrow stream interface (polars, DuckDB); got {kind}{hint}.")


def _arrow_stream(source: Any) -> Source:
    """A table offering ``__arrow_c_stream__`` (polars, DuckDB, newer pandas), read once into memory: the run
    reads its rows twice (scan, then the batches), and an Arrow stream can be read only once."""
    name = f"<{type(source).__name__}>"
    try:
        table = pa.table(source)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise ManifestError(f"The table {name} cannot be read as Arrow: {arrow_message(exc)}.") from exc
    table = table.replace_schema_metadata(None)
    _check_names(name, table.schema.names)
    return Source(name, table.schema, lambda: iter(table.to_batches()), str(Path.cwd()), False)


def open_source(source: Any, *, block_size: int, batch_size: int) -> Source:
    """Open a path, a pyarrow Table, a pandas DataFrame or any table offering the Arrow PyCapsule stream
    interface (``__arrow_c_stream__``); refuses repeated column names (results could not hold them) and
    anything unreadable with a one-sentence ``ManifestError`` (one naming what is accepted for other input)."""
    if isinstance(source, pa.Table):
        table = source
        _check_names("<pyarrow.Table>", table.schema.names)
        return Source("<pyarrow.Table>", table.schema, lambda: iter(table.to_batches()), str(Path.cwd()), False)
    if any(c.__name__ == "DataFrame" and c.__module__.startswith("pandas") for c in type(source).__mro__):
        _check_names("<pandas.DataFrame>", [str(c) for c in source.columns])
        try:  # pyarrow imports pandas itself, only now: pandas stays optional
            frame = pa.Table.from_pandas(source, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError) as exc:
            message = arrow_message(exc)
            raise ManifestError(f"The DataFrame cannot be converted to Arrow: {message}.") from exc
        frame = frame.replace_schema_metadata(None)  # pandas' index notes describe the frame, not the rows
        return Source("<pandas.DataFrame>", frame.schema, lambda: iter(frame.to_batches()), str(Path.cwd()), False)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        opened = _open_file(path, str(source), block_size, batch_size)
        _check_names(opened.name, opened.schema.names)
        return opened
    if hasattr(type(source), "__arrow_c_stream__"):
        return _arrow_stream(source)
    raise ManifestError(_refusal(source))


def _open_file(path: Path, name: str, block_size: int, batch_size: int) -> Source:
    lower = path.name.lower()
    base = str(path.parent.absolute())
    if not lower.endswith(CSV_SUFFIXES + PARQUET_SUFFIXES):
        suffix = path.suffix.lower()
        if suffix in _CONVERT:
            kind, reader = _CONVERT[suffix]
            raise ManifestError(
                f"The manifest {name} is {kind}, which is not read directly; convert it once, e.g. with "
                f"{reader.format(name=name)}.to_parquet('manifest.parquet'), and pass the .parquet file."
            )
        got = repr(suffix) if suffix else "no extension"
        raise ManifestError(
            f"The manifest {name} must end in .csv, .tsv, .csv.gz, .tsv.gz, .parquet or .pq; got {got}."
        )
    if path.is_dir():
        raise ManifestError(f"The manifest {name} is a folder, not a file.")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ManifestError(f"The manifest {name} cannot be opened: {exc.strerror or exc}.") from exc
    if lower.endswith(PARQUET_SUFFIXES):
        try:
            with pq.ParquetFile(path) as pf:
                schema = pf.schema_arrow
        except (pa.ArrowException, OSError) as exc:
            message = arrow_message(exc)
            raise ManifestError(f"The manifest {name} is not a readable Parquet file: {message}.") from exc
        return Source(name, schema, lambda: _parquet_batches(path, name, batch_size), base, False)
    gz = lower.endswith(".gz")
    header, delimiter, has_rows = _csv_header(path, name, gz=gz, tsv=lower.endswith((".tsv", ".tsv.gz")))
    schema = pa.schema([pa.field(column, pa.string()) for column in header])
    if not has_rows:  # header only, with or without a final newline: a valid manifest of 0 rows
        return Source(name, schema, lambda: iter(()), base, True)
    return Source(name, schema, lambda: _csv_batches(path, name, header, delimiter, block_size, gz), base, True)


def _csv_header(path: Path, name: str, *, gz: bool, tsv: bool) -> tuple[list[str], str, bool]:
    """The header's column names, the delimiter, and whether any non-blank line follows the header."""
    try:
        with open(path, "rb") as raw:
            fh: Iterable[bytes] = gzip.GzipFile(fileobj=raw) if gz else raw
            # Decode line by line: csv pulls only the header's lines, so bad bytes further down are
            # reported by the streaming reader with a row number, not blamed on the header.
            lines = (line.decode("utf-8") for line in fh)
            first = next(lines, "").removeprefix("\ufeff")
            # Blank lines before the header are skipped, as pyarrow skips them (only truly empty lines).
            nonblank = itertools.dropwhile(lambda line: not line.strip("\r\n"), itertools.chain([first], lines))
            top = next(nonblank, None)
            if top is None:
                raise ManifestError(f"The manifest {name} is empty: a CSV manifest needs a header line.")
            delimiter = "\t" if tsv else _sniff(top)
            header = next(csv.reader(itertools.chain([top], lines), delimiter=delimiter))
            has_rows = any(line.strip("\r\n") for line in lines)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"The manifest {name} has no readable CSV header line: {exc}.") from exc
    return header, delimiter, has_rows


def _sniff(line: str) -> str:
    """A comma, unless the header line has none but has tabs, semicolons or pipes (a spreadsheet's export)."""
    if "," in line:
        return ","
    counts = {d: line.count(d) for d in _SNIFFED}
    best = max(_SNIFFED, key=lambda d: counts[d])
    return best if counts[best] else ","


class _HoldTrailingCR(io.RawIOBase):
    """The bytes of ``raw``, read so that no chunk ends in ``\\r`` (except the very last).

    Why: pyarrow's CSV reader (26.0 included) drops a ``\\n`` that starts a buffer when the previous buffer ended
    in ``\\r``, taking the two for one line break even inside a quoted value (apache/arrow#51368): a note
    ``"a\\r\\nb"`` that straddled a buffer boundary came back as ``"a\\rb"``. A trailing ``\\r`` is held back
    and handed on at the start of the next chunk, so the reader never sees a buffer ending in one.
    """

    def __init__(self, raw: Any) -> None:
        super().__init__()
        self._raw = raw
        self._held = b""

    def readable(self) -> bool:
        """Always: this is a read-only stream."""
        return True

    def read(self, size: int | None = -1) -> bytes:
        """At most ``size`` bytes (all with ``-1``); ``b""`` at the end."""
        want = None if size is None or size < 0 else size - len(self._held)  # _held is always shorter than size
        data: bytes = self._held + self._raw.read(want)
        body = data.rstrip(b"\r")
        # A chunk of nothing but CRs is handed on whole: holding it all back could not make progress.
        self._held = data[len(body) :] if body else b""
        return body if body else data


def _parquet_batches(path: Path, name: str, batch_size: int) -> Iterator[pa.RecordBatch]:
    try:
        with pq.ParquetFile(path) as pf:
            yield from pf.iter_batches(batch_size=batch_size)
    except (pa.ArrowException, OSError) as exc:
        message = arrow_message(exc)
        raise ManifestError(f"The manifest {name} could not be read to the end: {message}.") from exc


def _csv_batches(
    path: Path, name: str, header: list[str], delimiter: str, block_size: int, gz: bool
) -> Iterator[pa.RecordBatch]:
    emitted = 0
    # Text only, and only an empty cell is missing: pyarrow's default null list would turn a file named NA.jpg
    # or an id "null" into a missing cell.
    convert = pcsv.ConvertOptions(
        column_types={c: pa.string() for c in header}, strings_can_be_null=True, null_values=[""]
    )
    # Quoted newlines are legal CSV; a manifest with a free-text column may well have them.
    parse = pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    while True:
        skip = emitted  # after a restart with a bigger block, rows already handed on are re-read, not re-sent
        try:
            # No reader threads: they call back into the Python file object, and one still reading when a malformed
            # file stops the run aborts the interpreter at exit (PyGILState_Release while finalizing).
            read = pcsv.ReadOptions(block_size=block_size, use_threads=False)
            raw = pa.input_stream(str(path), compression="gzip" if gz else None)
            stream = pa.PythonFile(_HoldTrailingCR(raw), mode="r")
            options = {"read_options": read, "parse_options": parse, "convert_options": convert}
            with raw, stream, pcsv.open_csv(stream, **options) as rd:
                if rd.schema.names != header:  # the file was replaced since open_source read its header
                    raise ManifestError(f"The header of the manifest {name} changed while it was being read.")
                for batch in rd:
                    if skip >= batch.num_rows:
                        skip -= batch.num_rows
                        continue
                    batch, skip = batch.slice(skip), 0
                    emitted += batch.num_rows
                    yield batch
            return
        except pa.ArrowInvalid as exc:
            straddling = "straddl" in str(exc)  # pyarrow's "straddling object straddles two block boundaries"
            if block_size < MAX_BLOCK_SIZE:
                # A row longer than the block, or one of pyarrow's block-boundary parse bugs (a quoted CR next
                # to a boundary can still split a row): read again with bigger blocks. A file that is really
                # malformed fails the same way at the largest block and is reported then.
                block_size = min(block_size * 4, MAX_BLOCK_SIZE)
                continue
            if straddling:
                raise ManifestError(
                    f"The manifest {name} has a row over {MAX_BLOCK_SIZE >> 20} MiB after its first "
                    f"{_rows(emitted)} (an unclosed quote?); fix the file."
                ) from exc
            raise _read_error(name, emitted, exc) from exc
        except (pa.ArrowException, OSError, EOFError) as exc:
            raise _read_error(name, emitted, exc) from exc


def _rows(n: int) -> str:
    return "row" if n == 1 else f"{n} rows"


def _read_error(name: str, rows: int, exc: Exception) -> ManifestError:
    message = arrow_message(exc)
    return ManifestError(f"The manifest {name} cannot be read beyond its first {_rows(rows)}: {message}.")
