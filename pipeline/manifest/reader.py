"""Stage 1: read a manifest in record batches (CSV/TSV, plain or gzip; Parquet; a pyarrow Table or a pandas DataFrame).

Nothing here reads the image files: a path is only resolved (with ``root``, checked with ``os.path.realpath``).
Memory stays flat: files are streamed batch by batch; the one whole-manifest structure, the duplicate-key check in
``scan``, keeps an 8-byte hash per row (~24 bytes a row while they are sorted: ~25 MB for a million rows).

Row identity: a row's key is its id cell as text when the manifest has an id column, else its path cell exactly as
written (an ``http(s)://`` source's without its query string: ``row_keys.path_key``); a row with neither gets
``#row-<n>`` (``n`` its 0-based position) and is rejected ``missing_path``. Keys
are unique within a manifest: ``scan`` refuses a repeat before anything is uploaded.

Columns: ``path`` is required; ``id``, ``file_name`` and the person columns (``person``, ``person_id``,
``primary``) are used when present, and must be present when the caller
named them (not the defaults). Parquet, Table and DataFrame types pass through as they are; a CSV's columns are text
(only an empty cell is missing) except int64 columns (``sources.IntColumns``), decided by ``scan``'s one streaming
pass, so a CSV's ``schema`` is known after ``scan`` (reading it earlier runs one). Results: ``pipeline.results``.
"""

from __future__ import annotations

import difflib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import ColumnMap
from pipeline.errors import ManifestError
from pipeline.fetch.refs import Problem, SourceParser, SourceRef, no_path, root_location, root_problem
from pipeline.manifest.row_keys import duplicate_message, hash64, path_key, repeated_hashes
from pipeline.manifest.sources import IntColumns, Source, arrow_message, canonical_ints, open_source, rechunk
from pipeline.models import Row

__all__ = ["NO_PATH_KEY", "Manifest", "ManifestInfo", "RowBatch"]

NO_PATH_KEY = "#row-"
"""Prefix of the key of a row with neither an id column nor a path (``#row-7``)."""

_DEFAULTS = ColumnMap()
_TRUE = frozenset({"true", "1", "yes"})


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    """What one streaming pass over the manifest found: its number of rows (keys all present and unique)."""

    rows: int


@dataclass(frozen=True, slots=True)
class RowBatch:
    """Some consecutive rows as read: their input columns (``Manifest.schema``) and their ``Row``s, same order."""

    columns: pa.RecordBatch
    rows: tuple[Row, ...]


def _columns_text(names: list[str]) -> str:
    shown = ", ".join(names[:20])
    return shown + (f", ... ({len(names)} in all)" if len(names) > 20 else "")


class Manifest:
    """A manifest opened for streaming. Re-iterable: every ``scan``/``row_batches``/``rows`` call reads anew.

    Build with ``Manifest.open``. ``name`` is the file path as given, or ``<pyarrow.Table>`` /
    ``<pandas.DataFrame>``; ``schema`` the input columns as they pass through to the results.
    """

    def __init__(self, source: Source, columns: ColumnMap, base: str, root: str | None, batch_size: int) -> None:
        names = source.schema.names
        self.name = source.name
        self._source = source
        self._schema: pa.Schema | None = None if source.csv else source.schema
        self._parse = SourceParser(base=base, root=root)
        """The one parser of every path cell: local, file://, s3://, gs://, http(s)://, joined and confined."""
        self._web_base = base[:8].lower().startswith(("http://", "https://"))
        """Relative cells join a remote folder (a manifest read from object storage or the web)."""
        self._batch_size = batch_size
        self._prefix = ""
        """Put before every row key (``--id-prefix``)."""
        self._path_i = self._column_index(names, columns.path, "path", required=True)
        self._id_i = self._column_index(names, columns.id, "id", required=columns.id != _DEFAULTS.id)
        self._name_i = self._column_index(
            names, columns.file_name, "file-name", required=columns.file_name != _DEFAULTS.file_name
        )
        self._id_name = columns.id
        self._person_i = [
            self._column_index(names, column, flag, required=column != default)
            for column, flag, default in ((columns.person, "person", _DEFAULTS.person),
                                          (columns.person_id, "person-id", _DEFAULTS.person_id),
                                          (columns.primary, "primary", _DEFAULTS.primary))
        ]

    @staticmethod
    def _column_index(names: list[str], column: str | None, flag: str, *, required: bool) -> int | None:
        if column is None or (column not in names and not required):
            return None
        if column not in names:
            role = "column" if flag == "path" else f"{flag} column"
            advice = f"name the {role} with --{flag}-column."
            lowered = {n.lower(): n for n in names}  # "Path" is as close to "path" as a name gets
            close = difflib.get_close_matches(column.lower(), list(lowered), n=1)
            if close:
                advice = f"did you mean {lowered[close[0]]!r}? Name the {role} with --{flag}-column."
            raise ManifestError(
                f"The manifest has no {column!r} column (columns: {_columns_text(names)}); {advice}"
            )
        return names.index(column)

    @classmethod
    def open(
        cls,
        source: Path | str | pa.Table | Any,
        columns: ColumnMap = _DEFAULTS,
        *,
        root: Path | str | None = None,
        batch_size: int = 4096,
        block_size: int = 1 << 20,
        base: str | None = None,
        id_prefix: str = "",
    ) -> Manifest:
        """Open ``source`` and check what is cheap to check: readable, known format, column names.

        Only the header (CSV) or the schema (Parquet) is read here. Relative paths will resolve against
        ``root`` if given (a folder, or an ``s3://``, ``gs://``, ``http(s)://`` prefix kept as text: see
        ``fetch.root_location``), else the manifest file's folder, else the current directory (in-memory input).
        Batches hold at most ``batch_size`` rows; ``block_size`` is the initial CSV read block (grown up
        to ``sources.MAX_BLOCK_SIZE`` when one row needs more). Raises ``ManifestError`` with one sentence
        for an unknown format (saying how to convert a spreadsheet or JSON), repeated column names, or a
        missing column (with the closest name, if any). ``columns.path`` must exist;
        ``columns.id``/``file_name`` must exist only when not the defaults. ``base`` replaces the manifest's
        folder as what relative paths join (a downloaded remote manifest's URL folder: ``s3://bucket/dir/``).
        ``id_prefix`` is put before every row key (two archives reusing the same ids keep apart in one journal).
        """
        if batch_size < 1:
            raise ManifestError("The batch size must be at least 1.")
        root = root_location(root) if root is not None else None
        problem = root_problem(root) if isinstance(root, str) else None  # a URL: every cell is a SourceParser's
        if problem is not None:
            raise ManifestError(f"--root cannot be used: {problem}.")
        if isinstance(root, Path) and not root.is_dir():
            raise ManifestError(f"--root {root} is not a folder.")
        opened = open_source(source, block_size=block_size, batch_size=batch_size)
        folder = str(root.absolute()) if isinstance(root, Path) else (root or base or opened.base)
        made = cls(opened, columns, folder, folder if root is not None else None, batch_size)
        made._prefix = id_prefix
        return made

    @property
    def has_persons(self) -> bool:
        """Whether the manifest has a person, person-id or primary column."""
        return any(i is not None for i in self._person_i)

    @property
    def schema(self) -> pa.Schema:
        """The pass-through schema that ``row_batches`` columns have (a CSV's types: see the module docstring)."""
        while self._schema is None:
            self.scan()
        return self._schema

    def _text_batches(self) -> Iterator[pa.RecordBatch]:
        return rechunk(self._source.batches(), self._batch_size)

    def _typed(self, batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
        if not self._source.csv:
            return batch
        arrays = list(batch.columns)
        for i, field in enumerate(schema):
            if field.type == pa.string():
                continue
            ints = canonical_ints(arrays[i])
            if ints is None:  # scan saw only integers here: the file was rewritten since
                raise ManifestError(
                    f"The column {field.name!r} of {self.name} now holds text that is not an integer; "
                    "the manifest changed during the run: run again."
                )
            arrays[i] = ints
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _text(self, batch: pa.RecordBatch, index: int | None, what: str) -> list[str | None] | None:
        if index is None:
            return None
        column = batch.column(index)
        if not pa.types.is_string(column.type):
            try:  # ints become "123"; dictionary and large strings decode
                column = pc.cast(column, pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ManifestError(
                    f"The {what} column of {self.name} cannot be read as text ({column.type}): "
                    f"{arrow_message(exc)}."
                ) from exc
        cells: list[str | None] = column.to_pylist()
        return cells

    def _keys(self, batch: pa.RecordBatch, start: int, paths: list[str | None]) -> list[str]:
        ids = self._text(batch, self._id_i, "id")
        keys: list[str]
        if ids is None:
            web = self._web_base
            keys = [f"{NO_PATH_KEY}{start + j}" if no_path(p) else path_key(p, web_base=web)  # type: ignore[arg-type]
                    for j, p in enumerate(paths)]
        else:
            for j, value in enumerate(ids):
                if not value:
                    raise ManifestError(
                        f"Row {start + j} of {self.name} has an empty {self._id_name!r}; give every row an id, "
                        "or pass --id-column '' to key the rows by their path."
                    )
            keys = ids  # type: ignore[assignment]  # no None left: checked just above
        prefix = self._prefix
        return [prefix + k for k in keys] if prefix else keys

    def _paths(self, batch: pa.RecordBatch) -> list[str | None]:
        return self._text(batch, self._path_i, "path") or []

    def scan(self) -> ManifestInfo:
        """One streaming pass: count the rows, refuse empty ids and repeated keys, and (a CSV's first pass)
        decide the column types.

        Raises ``ManifestError`` naming the first repeated key (in row order) and both 0-based row numbers;
        without an id column the key is the path, so the sentence suggests an id column.
        """
        ints = IntColumns(self._source.schema) if self._schema is None else None
        seen = array("Q")  # 8-byte key hashes, not the keys: 8 MB for a million rows
        rows = 0
        for batch in self._text_batches():
            if ints is not None:
                ints.feed(batch)
            seen.extend(map(hash64, self._keys(batch, rows, self._paths(batch))))
            rows += batch.num_rows
        repeated = repeated_hashes(seen)
        if repeated:
            self._raise_duplicate(repeated)
        if ints is not None:
            self._schema = ints.schema()
        return ManifestInfo(rows=rows)

    def _raise_duplicate(self, repeated: set[int]) -> None:
        first: dict[str, tuple[int, bool]] = {}
        index = 0
        for batch in self._text_batches():  # second pass only over keys whose hash repeats
            paths = self._paths(batch)
            for j, key in enumerate(self._keys(batch, index, paths)):
                if hash64(key) in repeated:
                    if key in first:
                        raise ManifestError(duplicate_message(self.name, key, *first[key], index + j,
                                                              has_id=self._id_i is not None))
                    first[key] = (index + j, self._id_i is None and no_path(paths[j]))
            index += batch.num_rows
        # Only a 64-bit hash collision between different keys: nothing to report.

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The input columns in row order, at most ``batch_size`` rows per batch, typed as ``schema``."""
        schema = self.schema
        for batch in self._text_batches():
            yield self._typed(batch, schema)

    def row_batches(self) -> Iterator[RowBatch]:
        """The one read a run needs: each batch's input columns (typed as ``schema``) with its ``Row``s.

        ``Row.index`` is the 0-based position in this read, ``Row.key`` as in the module docstring. An empty
        path gives ``problem=("missing_path", ...)``; with a root, a path whose real location is outside it
        gives ``("outside_root", ...)``; a NUL character gives ``("invalid_path", ...)``. Paths are resolved,
        never opened. A CSV not yet scanned is scanned first (its types are decided by a whole pass).
        """
        schema = self.schema
        parse = self._parse
        index = 0
        for batch in self._text_batches():
            paths = self._paths(batch)
            keys = self._keys(batch, index, paths)
            names = self._text(batch, self._name_i, "file-name")
            rows = []
            parsed: dict[str | None, SourceRef | Problem] = {}
            for j, text in enumerate(paths):
                file_name = (names[j] or None) if names is not None else None
                ref = parsed.get(text)  # a photo named by several rows of a batch is parsed once
                if ref is None:
                    ref = parsed[text] = parse(text)
                rows.append(Row(index + j, keys[j], text or "", ref, file_name))
            if any(i is not None for i in self._person_i):
                rows = self._with_persons(batch, rows)
            yield RowBatch(self._typed(batch, schema), tuple(rows))
            index += batch.num_rows

    def _with_persons(self, batch: pa.RecordBatch, rows: list[Row]) -> list[Row]:
        """The rows with their person columns: an empty cell is no person; ``primary`` is true for
        true/1/yes (any case)."""
        people, ids, marks = (self._text(batch, i, what) for i, what in
                              zip(self._person_i, ("person", "person-id", "primary"), strict=True))
        out = []
        for j, row in enumerate(rows):
            person = (people[j] or None) if people is not None else None
            person_id = (ids[j] or "").strip() or None if ids is not None else None
            primary = marks is not None and (marks[j] or "").strip().lower() in _TRUE
            out.append(row._replace(person=person, person_id=person_id, primary=primary))
        return out

    def rows(self, start: int = 0) -> Iterator[Row]:
        """The ``Row``s of ``row_batches`` from index ``start`` on."""
        for batch in self.row_batches():
            if batch.rows and batch.rows[-1].index >= start:
                yield from (row for row in batch.rows if row.index >= start)

