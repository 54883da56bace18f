"""The results manifest: every row read in this run with its outcome, in input order (the schema is a contract).

Columns: all input columns (one whose name clashes with a results column is renamed ``input_<name>``, except
the manifest's person-id column when it is named ``person_id``: it is folded into the results' ``person_id``,
which holds the attached person's id, else the row's input id, so nothing is lost), then the results columns
of ``result_fields.RESULT_FIELDS`` (``status, thumbnail_key, reason, detail, action, width, height,
bytes, source_sha256, attempts, uploaded_at, duplicate_of``). ``uploaded_at`` is ``timestamp[us, tz=UTC]`` in
Parquet and in tables, ISO-8601 text in CSV. The rows come as ``ResultChunk``s (input columns + results,
paired by the caller by row key, never by position in a second read of the manifest). Writing streams batch by
batch into a temporary file beside the target that replaces it only when complete: a reader never sees half a
file, and a stopped write leaves the previous file intact. Temporary files left by a killed run are removed by
``remove_stale_temps``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from pipeline.errors import ConfigError, LocalWriteError
from pipeline.manifest.pandas_meta import with_nullable_ints
from pipeline.models import RowResult
from pipeline.result_fields import RESULT_FIELDS

__all__ = [
    "RESULT_COLUMNS",
    "ResultChunk",
    "as_columns",
    "check_results_target",
    "folded",
    "remove_stale_temps",
    "result_schema",
    "results_format",
    "results_table",
    "write_results",
]

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_MILLIS = pa.timestamp("ms", tz="UTC")
_ARROW = {"text": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "timestamp": _TIMESTAMP}
_FIELDS = tuple(f for f in RESULT_FIELDS if f.in_results)
RESULT_COLUMNS: tuple[pa.Field, ...] = tuple(pa.field(f.name, _ARROW[f.kind]) for f in _FIELDS)
"""The results columns as Parquet and tables hold them (CSV: ``uploaded_at`` as text)."""


@dataclass(frozen=True, slots=True)
class ResultChunk:
    """Input columns of some rows, and their results in the same order: one ``RowResult`` per row, or (what
    the runner hands on: no object per row) the results columns as lists, by ``RESULT_FIELDS`` name, with
    ``status`` as text."""

    columns: pa.RecordBatch
    results: Sequence[RowResult] | Mapping[str, list[Any]]

    @property
    def rows(self) -> int:
        """How many rows the results hold."""
        if isinstance(self.results, Mapping):
            return len(self.results["status"])
        return len(self.results)


def as_columns(results: Sequence[RowResult]) -> dict[str, list[Any]]:
    """``RowResult``s as the results columns (``status`` as text)."""
    found = {f.name: [getattr(r, f.name) for r in results] for f in _FIELDS}
    found["status"] = [s.value for s in found["status"]]
    return found


PERSON_ID = "person_id"
"""The results field an input person-id column of the same name is folded into (``fold``)."""


def folded(input_schema: pa.Schema, person_id_column: str | None) -> str | None:
    """The input column folded into the results' ``person_id``: the person-id column when it is named
    ``person_id`` and present (a user's ``person_id`` column then stays ``person_id``), else ``None``."""
    return PERSON_ID if person_id_column == PERSON_ID and PERSON_ID in input_schema.names else None


def result_schema(input_schema: pa.Schema, *, csv: bool = False, fold: str | None = None) -> pa.Schema:
    """The output schema: input columns (clashing names prefixed ``input_``; ``fold``, the column ``folded``
    names, left out: the results' ``person_id`` holds it), then ``RESULT_COLUMNS``."""
    result_names = {f.name for f in RESULT_COLUMNS}
    taken = result_names | set(input_schema.names)
    fields = []
    for field in input_schema:
        name = field.name
        if name == fold:
            continue
        if name in result_names:
            name = "input_" + name
            while name in taken:  # "input_status" may itself be an input column
                name = "input_" + name
            taken.add(name)
        fields.append(field.with_name(name))
    for field in RESULT_COLUMNS:
        fields.append(field.with_type(pa.string()) if csv and field.type == _TIMESTAMP else field)
    # No input metadata (pandas' index notes would describe the input); pandas reads the results' integers as Int64.
    return with_nullable_ints(pa.schema(fields), (f.name for f in RESULT_COLUMNS))


def results_format(path: Path, fmt: str | None = None) -> str:
    """``parquet`` or ``csv``, from ``fmt`` or the extension; ``ConfigError`` otherwise."""
    kind = (fmt or Path(path).suffix.lstrip(".")).lower()
    if kind in ("parquet", "pq"):
        return "parquet"
    if kind == "csv":
        return "csv"
    raise ConfigError(f"The results file {path} must end in .parquet or .csv.")


def check_results_target(
    path: Path, input_schema: pa.Schema, *, manifest: Path | None = None, rows: int = 0
) -> None:
    """Everything about writing results to ``path`` that can be known before the first upload.

    Raises ``ConfigError`` (one sentence) when ``path`` is the manifest itself, a folder, in a folder that
    cannot be created or written or without room for ``rows`` results (and the run's spill beside them), or of
    a format that cannot hold the input columns (nested or binary columns in CSV).
    """
    path = Path(path)
    kind = results_format(path)
    if manifest is not None and path.absolute().resolve() == Path(manifest).absolute().resolve():
        raise ConfigError(f"The results file {path} is the manifest itself; choose another --out.")
    if path.is_dir():
        raise ConfigError(f"The results path {path} is a folder; name a .parquet or .csv file.")
    _check_folder(path.parent, "results")
    need = (1 << 20) + rows * _BYTES_PER_ROW
    free = shutil.disk_usage(path.parent).free
    if free < need:
        raise ConfigError(
            f"The results folder {path.parent} has {free >> 20} MiB free; about {need >> 20} MiB are needed "
            f"for {rows} rows: free some space or choose another --out."
        )
    if kind == "csv":
        schema = result_schema(input_schema, csv=True)
        try:  # the CSV writer refuses nested and binary types; find out now, not after the uploads
            with pcsv.CSVWriter(io.BytesIO(), schema) as writer:
                writer.write_batch(pa.RecordBatch.from_pylist([], schema=schema))
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            odd = [f"{f.name} ({f.type})" for f in input_schema
                   if pa.types.is_nested(f.type) or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
            what = ", ".join(odd[:5]) or str(exc).splitlines()[0]
            raise ConfigError(
                f"A CSV results file cannot hold the column(s) {what}; use a .parquet --out."
            ) from exc


def _check_folder(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".thumbnail-ingest-probe-{os.getpid()}-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"The {what} folder {folder} cannot be written ({exc.strerror or exc}); choose another location."
        ) from exc


_BYTES_PER_ROW = 1024
"""Room to ask for per row before a run: the spill and the results (and its temporary copy), generously."""

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def remove_stale_temps(path: Path) -> int:
    """Remove temporary files that a killed earlier write of ``path`` left beside it (those of processes that
    are gone); return how many."""
    removed = 0
    folder = Path(path).parent
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            m = _TEMP.match(entry.name)
            if m is None or m["name"] != Path(path).name or _alive(int(m["pid"])):
                continue
            with contextlib.suppress(OSError):
                entry.unlink()
                removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is not writing it yet: anything under our pid is a leftover
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _utc(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    # RowResult promises UTC; a naive timestamp is read as UTC rather than as local time.
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _column(values: list[Any], kind: str, *, csv: bool) -> pa.Array:
    if kind == "timestamp":
        text = pa.array(values, pa.string())
        try:  # Arrow parses ISO 8601 with a zone (``Z`` or ``+00:00``) in C
            moments = pc.cast(text, _TIMESTAMP)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a naive time (read as UTC) or another form
            moments = pa.array([_utc(v) for v in values], _TIMESTAMP)
        if csv:  # one written form (``clock.time_text``), whichever of ``Z``/``+00:00`` an older journal holds
            return pc.strftime(pc.cast(moments, _MILLIS, safe=False), format="%Y-%m-%dT%H:%M:%SZ")
        return moments
    return pa.array(values, _ARROW[kind])


def _input_ids(column: pa.Array) -> list[str | None]:
    """An input person-id column as the manifest reads it: text, trimmed, empty as none."""
    text = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
    return [(v or "").strip() or None for v in text.to_pylist()]


def _batches(chunks: Iterable[ResultChunk], schema: pa.Schema, *, csv: bool,
             fold: str | None = None) -> Iterator[pa.RecordBatch]:
    for chunk in chunks:
        if chunk.columns.num_rows != chunk.rows:  # a caller bug: never write a shifted file
            raise ValueError(f"{chunk.columns.num_rows} input rows arrived with {chunk.rows} results.")
        inputs = list(chunk.columns.columns)
        results = dict(chunk.results) if isinstance(chunk.results, Mapping) else as_columns(chunk.results)
        if fold is not None:
            at = chunk.columns.schema.get_field_index(fold)
            ids = _input_ids(inputs.pop(at))
            # The attached id where there is one (for an id row, the same id), else the row's own input id.
            results["person_id"] = [p if p is not None else ids[i] for i, p in enumerate(results["person_id"])]
        arrays = [_column(results[f.name], f.kind, csv=csv) for f in _FIELDS]
        yield pa.RecordBatch.from_arrays(inputs + arrays, schema=schema)


def results_table(input_schema: pa.Schema, chunks: Iterable[ResultChunk], *, fold: str | None = None) -> pa.Table:
    """The results as an in-memory Table (for the Python API); same columns and types as the Parquet file."""
    schema = result_schema(input_schema, fold=fold)
    return pa.Table.from_batches(list(_batches(chunks, schema, csv=False, fold=fold)), schema=schema)


def write_results(
    path: Path, input_schema: pa.Schema, chunks: Iterable[ResultChunk], *, fmt: str | None = None,
    fold: str | None = None,
) -> int:
    """Write the results file atomically and return the number of rows written.

    On any error (or a ``BaseException`` such as a cancellation) the temporary file is removed and the
    previous file at ``path`` is left as it was. Raises ``LocalWriteError`` when the disk refuses the write.
    """
    path = Path(path)
    kind = results_format(path, fmt)
    schema = result_schema(input_schema, csv=kind == "csv", fold=fold)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    rows = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # os.open with O_EXCL honours the umask (mkstemp would force 0600) and never follows a planted file.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            writer: pq.ParquetWriter | pcsv.CSVWriter | None = None
            try:
                writer = pq.ParquetWriter(fh, schema) if kind == "parquet" else pcsv.CSVWriter(fh, schema)
                for batch in _batches(chunks, schema, csv=kind == "csv", fold=fold):
                    writer.write_batch(batch)
                    rows += batch.num_rows
            except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise ConfigError(
                    f"The results cannot be written as {kind} ({exc}); use a .parquet results path."
                ) from exc
            finally:
                if writer is not None:
                    writer.close()
            fh.flush()
            os.fsync(fh.fileno())  # the rename below must not publish a file whose bytes are still in cache
        temp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise LocalWriteError(
            f"The results file {path} could not be written ({exc.strerror or exc}); the journal holds every "
            "row's state: free some space and run the same command again to write it."
        ) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return rows
