"""The results manifest: every input row with its outcome, in input order (the schema is a contract).

Columns: all input columns (one whose name clashes with a results column is renamed ``input_<name>``),
then ``status, thumbnail_key, reason, detail, action, width, height, bytes, source_sha256, attempts,
uploaded_at, duplicate_of``. ``uploaded_at`` is ``timestamp[us, tz=UTC]`` in Parquet and in tables, ISO-8601
text in CSV. Writing streams batch by batch (memory flat) into a temporary file beside the target that
replaces it only when complete, so a reader never sees half a results file.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from pipeline.errors import ConfigError
from pipeline.models import RowResult

if TYPE_CHECKING:
    from pipeline.manifest import Manifest

__all__ = ["RESULT_COLUMNS", "result_schema", "results_table", "write_results"]

_TIMESTAMP = pa.timestamp("us", tz="UTC")
RESULT_COLUMNS: tuple[pa.Field, ...] = (
    pa.field("status", pa.string()),
    pa.field("thumbnail_key", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("detail", pa.string()),
    pa.field("action", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("bytes", pa.int64()),
    pa.field("source_sha256", pa.string()),
    pa.field("attempts", pa.int32()),
    pa.field("uploaded_at", _TIMESTAMP),
    pa.field("duplicate_of", pa.string()),
)
"""The results columns as Parquet and tables hold them (CSV: ``uploaded_at`` as text)."""


def result_schema(input_schema: pa.Schema, *, csv: bool = False) -> pa.Schema:
    """The output schema: input columns (clashing names prefixed ``input_``), then ``RESULT_COLUMNS``."""
    result_names = {f.name for f in RESULT_COLUMNS}
    taken = result_names | set(input_schema.names)
    fields = []
    for field in input_schema:
        name = field.name
        if name in result_names:
            name = "input_" + name
            while name in taken:  # "input_status" may itself be an input column
                name = "input_" + name
            taken.add(name)
        fields.append(field.with_name(name))
    for field in RESULT_COLUMNS:
        fields.append(field.with_type(pa.string()) if csv and field.type == _TIMESTAMP else field)
    return pa.schema(fields)  # no metadata: pandas' index notes would describe the input, not this


def _utc(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    # RowResult promises UTC; a naive timestamp is read as UTC rather than as local time.
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _result_arrays(chunk: list[RowResult], *, csv: bool) -> list[pa.Array]:
    def text(values: Iterable[str | None]) -> pa.Array:
        return pa.array(values, pa.string())

    uploaded = [r.uploaded_at for r in chunk]
    return [
        text(r.status.value for r in chunk),
        text(r.thumbnail_key for r in chunk),
        text(r.reason for r in chunk),
        text(r.detail for r in chunk),
        text(r.action for r in chunk),
        pa.array([r.width for r in chunk], pa.int32()),
        pa.array([r.height for r in chunk], pa.int32()),
        pa.array([r.bytes for r in chunk], pa.int64()),
        text(r.source_sha256 for r in chunk),
        pa.array([r.attempts for r in chunk], pa.int32()),
        text(uploaded) if csv else pa.array([_utc(u) for u in uploaded], _TIMESTAMP),
        text(r.duplicate_of for r in chunk),
    ]


def _result_batches(
    manifest: Manifest, results: Iterable[RowResult], schema: pa.Schema, *, csv: bool
) -> Iterator[pa.RecordBatch]:
    """Zip input batches with results; raises ``ValueError`` when the results do not line up one to one."""
    iterator = iter(results)
    start = 0
    for batch in manifest.batches():
        chunk = list(itertools.islice(iterator, batch.num_rows))
        if len(chunk) < batch.num_rows:
            raise ValueError(f"The results end at row {start + len(chunk)}; the manifest has more rows.")
        for offset, result in enumerate(chunk):
            if result.index != start + offset:  # misalignment is a caller bug: never write a shifted file
                expected = start + offset
                raise ValueError(f"Result for row {result.index} arrived where row {expected} was expected.")
        yield pa.RecordBatch.from_arrays(list(batch.columns) + _result_arrays(chunk, csv=csv), schema=schema)
        start += batch.num_rows
    extra = next(iterator, None)
    if extra is not None:
        raise ValueError(f"There is a result for row {extra.index}, but the manifest has {start} rows.")


def results_table(manifest: Manifest, results: Iterable[RowResult]) -> pa.Table:
    """The results as an in-memory Table (for the Python API); same columns and types as the Parquet file."""
    schema = result_schema(manifest.schema)
    return pa.Table.from_batches(list(_result_batches(manifest, results, schema, csv=False)), schema=schema)


def _format_of(path: Path, fmt: str | None) -> str:
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt in ("parquet", "pq"):
        return "parquet"
    if fmt == "csv":
        return "csv"
    raise ConfigError(f"The results file {path} must end in .parquet or .csv.")


def write_results(
    path: Path, manifest: Manifest, results: Iterable[RowResult], *, fmt: str | None = None
) -> int:
    """Write the results file atomically and return the number of rows written.

    ``results`` must yield exactly one ``RowResult`` per manifest row, in index order (``ValueError``
    otherwise, and the target is left untouched). ``fmt`` (``parquet``/``csv``) overrides the extension.
    """
    path = Path(path)
    kind = _format_of(path, fmt)
    schema = result_schema(manifest.schema, csv=kind == "csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # os.open with O_EXCL honours the umask (mkstemp would force 0600) and never follows a planted file.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    rows = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            writer: pq.ParquetWriter | pcsv.CSVWriter | None = None
            try:
                writer = pq.ParquetWriter(fh, schema) if kind == "parquet" else pcsv.CSVWriter(fh, schema)
                for batch in _result_batches(manifest, results, schema, csv=kind == "csv"):
                    writer.write_batch(batch)
                    rows += batch.num_rows
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as exc:
                raise ConfigError(
                    f"The results cannot be written as {kind} ({exc}); use a .parquet results path."
                ) from exc
            finally:
                if writer is not None:
                    writer.close()
            fh.flush()
            os.fsync(fh.fileno())  # the rename below must not publish a file whose bytes are still in cache
        temp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    return rows
