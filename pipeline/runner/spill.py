"""The spill: the rows read in this run (input columns and row keys), kept on disk for the results.

The manifest is read exactly once per run. Each batch is appended here as it is read (Arrow IPC stream, so
memory stays flat); at the end the results are these rows, each paired by its key with its journal record.
Whatever happens to the manifest file during the run, each result row carries its own row's key.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.ipc as ipc

from pipeline.journal import Journal
from pipeline.journal.schema import COLUMNS
from pipeline.models import Status
from pipeline.results import ResultChunk

if TYPE_CHECKING:
    from pipeline.manifest import RowBatch

__all__ = ["ResultCounts", "Spill", "WriteAborted"]

_KEY, _HAS_PATH = "__thumbnail_ingest_key", "__thumbnail_ingest_has_path"


class WriteAborted(Exception):
    """Raised into a results write that was asked to stop (a second signal): the previous file stays."""


@dataclass
class ResultCounts:
    """What assembling the results found: rows per status and per reason, and the rows with a path cell."""

    by_status: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    with_path: int = 0
    with_path_not_found: int = 0
    rows: int = 0
    in_journal: Counter[str] = field(default_factory=Counter)
    """Rows of this input the journal holds, per journaled status (the rest of the journal is not in it)."""


class Spill:
    """An append-only file of the rows read (``write`` from one thread), read back by ``chunks``."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = Path(path)
        self.schema = schema
        self._full = schema.append(pa.field(_KEY, pa.string())).append(pa.field(_HAS_PATH, pa.bool_()))
        self._sink = pa.OSFile(str(self.path), "wb")
        self._writer: ipc.RecordBatchStreamWriter | None = ipc.new_stream(self._sink, self._full)
        self.rows = 0

    def write(self, batch: RowBatch) -> None:
        """Append one batch of rows (its input columns, its keys, whether each has a path cell)."""
        if self._writer is None:
            raise RuntimeError("the spill is closed")
        keys = pa.array([r.key for r in batch.rows], pa.string())
        has_path = pa.array([bool(r.path and r.path.strip()) for r in batch.rows], pa.bool_())
        columns = [*batch.columns.columns, keys, has_path]
        self._writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self._full))
        self.rows += len(batch.rows)

    def close(self) -> None:
        """Finish the stream (idempotent)."""
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = None

    def remove(self) -> None:
        """Close and delete the file."""
        self.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    def chunks(
        self, journal: Journal, unfinished: tuple[str, str], counts: ResultCounts,
        abort: threading.Event | None = None,
    ) -> Iterator[ResultChunk]:
        """The rows read, each with its journal record; rows not finished get ``pending`` and the reason and
        detail in ``unfinished``. Fills ``counts``. Raises ``WriteAborted`` between batches once ``abort`` is
        set."""
        self.close()
        width = len(self.schema)
        absent = _absent(unfinished, journal.run_id)
        with pa.OSFile(str(self.path), "rb") as source:
            reader = ipc.open_stream(source)
            for batch in reader:
                if abort is not None and abort.is_set():
                    raise WriteAborted
                keys: list[str] = batch.column(width).to_pylist()
                has_path: list[bool] = batch.column(width + 1).to_pylist()
                found = journal.results_of(keys, unfinished)
                counts.in_journal.update(str(r[-1]) for r in found.values())  # as journaled (not "pending")
                values = _columns([found.get(key) or absent for key in keys])
                reasons = values["reason"]
                counts.by_status.update(str(v) for v in values["status"])
                counts.by_reason.update(str(r) for r in reasons if r)
                counts.with_path += sum(has_path)
                counts.with_path_not_found += sum(1 for hp, r in zip(has_path, reasons, strict=True)
                                                  if hp and r == "not_found")
                counts.rows += len(keys)
                columns = pa.RecordBatch.from_arrays(batch.columns[:width], schema=self.schema)
                yield ResultChunk(columns, values)


def _absent(unfinished: tuple[str, str], run_id: str | None) -> tuple[object, ...]:
    """The results record of a row the journal does not hold (``Journal.results_of``'s shape): ``pending``
    with ``unfinished``'s reason and detail, under this run's id."""
    fields: dict[str, object] = dict.fromkeys(COLUMNS)
    fields.update(status=Status.PENDING.value, reason=unfinished[0], detail=unfinished[1], attempts=0,
                  run_id=run_id, this_run=unfinished[0])
    return ("", *(fields[c] for c in COLUMNS), None)


def _columns(records: list[tuple[object, ...]]) -> dict[str, list[object]]:
    """``Journal.results_of`` records (``key``, the ``COLUMNS``, the journaled status) as one list per column
    of ``COLUMNS``."""
    if not records:
        return {c: [] for c in COLUMNS}
    return dict(zip(COLUMNS, (list(c) for c in list(zip(*records, strict=True))[1:-1]), strict=True))
