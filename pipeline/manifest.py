"""Stage 1: read a manifest in record batches (CSV, Parquet, a pyarrow Table or a pandas DataFrame).

Nothing here reads the image files: a row's path is only resolved (and, with ``root``, checked with
``os.path.realpath``). Memory stays flat in the manifest's size: files are streamed batch by batch; the
one whole-manifest structure, duplicate-id detection in ``scan``, keeps an 8-byte hash per row (about
24 bytes per row while it sorts them at the end: ~25 MB for a million rows).

Column rules: the ``path`` column is required. The ``id`` and ``file_name`` columns are used when present;
when absent they are ignored if the ``ColumnMap`` holds the default name, and an error if the caller
named another column (the user asked for it, so its absence is a mistake). CSV cells are always read as
text (no type inference: ``007`` stays ``007``), empty cells as NULL. The results side lives in
``pipeline.results`` and is re-exported here.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import ColumnMap
from pipeline.errors import ManifestError
from pipeline.models import Row
from pipeline.results import results_table, write_results
from pipeline.sources import BatchFactory, arrow_message, open_source, rechunk

__all__ = ["Manifest", "ManifestInfo", "results_table", "write_results"]

_DEFAULTS = ColumnMap()
_MISSING_PATH = ("missing_path", "the path cell is empty")
_NUL_PATH = ("invalid_path", "the path contains a NUL character")


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    """What one streaming pass over the manifest found.

    ``fingerprint`` is a sha256 over the ordered (key, path, file_name) of every row: equal for the same
    content whatever the format or batching, different when any row's key, path or file name changes, or
    when rows are added, removed or reordered. Pass-through columns do not count.
    """

    rows: int
    fingerprint: str


def _columns_text(names: list[str]) -> str:
    shown = ", ".join(names[:20])
    return shown + (f", ... ({len(names)} in all)" if len(names) > 20 else "")


class _Resolver:
    """Turns a path cell into ``(source, problem)``; cheap enough for a million rows.

    With a root, every path's real location must lie inside the root's real location. The realpath of
    each folder is cached (rows of one manifest share few folders), so a row costs one ``lstat`` of the
    file itself, needed to see whether the file is a symlink that points elsewhere.
    """

    def __init__(self, base: str, root: str | None) -> None:
        self.base = base
        self.root = os.path.realpath(root) if root is not None else None
        if self.root is not None:
            self.prefix = self.root if self.root.endswith(os.sep) else self.root + os.sep
        self._dirs: dict[str, str] = {}

    def __call__(self, text: str | None) -> tuple[Path | None, tuple[str, str] | None]:
        if not text or text.isspace():
            return None, _MISSING_PATH
        if "\x00" in text:
            return None, _NUL_PATH
        # os.path on str, not pathlib: several times cheaper per row, and a million rows add up.
        joined = os.path.join(self.base, text)  # noqa: PTH118  # an absolute cell replaces the base
        if self.root is None:
            return Path(joined), None
        real = self._realpath(joined)
        if real != self.root and not real.startswith(self.prefix):
            return None, ("outside_root", f"the path resolves to {real}, outside --root {self.root}")
        # Hand on the checked real location, so what is opened later is what was checked here.
        return Path(real), None

    def _realpath(self, joined: str) -> str:
        head, tail = os.path.split(joined)
        if tail in ("", ".", ".."):
            return os.path.realpath(joined)
        real_head = self._dirs.get(head)
        if real_head is None:
            if len(self._dirs) >= 8192:  # bound the cache; a manifest over many folders just re-resolves
                self._dirs.clear()
            real_head = self._dirs[head] = os.path.realpath(head)
        full = os.path.join(real_head, tail)  # noqa: PTH118
        return os.path.realpath(full) if os.path.islink(full) else full  # noqa: PTH114


class Manifest:
    """A manifest opened for streaming. Re-iterable: every ``scan``/``rows``/``batches`` call reads anew.

    Build with ``Manifest.open``. ``name`` is the file path as given, or ``<pyarrow.Table>`` /
    ``<pandas.DataFrame>``; ``schema`` the input columns, which pass through to the results.
    """

    def __init__(
        self,
        name: str,
        schema: pa.Schema,
        source: BatchFactory,
        columns: ColumnMap,
        resolver: _Resolver,
        batch_size: int,
    ) -> None:
        names = schema.names
        self.name = name
        self.schema = schema
        self._source = source
        self._resolver = resolver
        self._batch_size = batch_size
        self._path_i = self._column_index(names, columns.path, "path", required=True)
        self._id_i = self._column_index(names, columns.id, "id", required=columns.id != _DEFAULTS.id)
        self._name_i = self._column_index(
            names, columns.file_name, "file-name", required=columns.file_name != _DEFAULTS.file_name
        )
        self._id_name = columns.id

    def _column_index(self, names: list[str], column: str | None, flag: str, *, required: bool) -> int | None:
        if column is None or (column not in names and not required):
            return None
        if column not in names:
            role = "column" if flag == "path" else f"{flag} column"
            raise ManifestError(
                f"The manifest has no {column!r} column (columns: {_columns_text(names)}); "
                f"name the {role} with --{flag}-column."
            )
        if names.count(column) > 1:
            count = names.count(column)
            raise ManifestError(f"The manifest has {count} columns named {column!r}; rename all but one.")
        return names.index(column)

    @classmethod
    def open(
        cls,
        source: Path | str | pa.Table | Any,
        columns: ColumnMap = _DEFAULTS,
        *,
        root: Path | None = None,
        batch_size: int = 4096,
        block_size: int = 1 << 20,
    ) -> Manifest:
        """Open ``source`` and check what is cheap to check: readable, known format, columns present.

        Only the header (CSV) or the schema (Parquet) is read here. Relative paths will resolve against
        ``root`` if given, else the manifest file's folder, else the current directory (in-memory input).
        Batches hold at most ``batch_size`` rows; ``block_size`` is the initial CSV read block (grown up
        to ``sources.MAX_BLOCK_SIZE`` when one row needs more). Raises ``ManifestError`` with one sentence.
        ``columns.path`` must exist; ``columns.id``/``file_name`` must exist only when not the defaults.
        """
        if batch_size < 1:
            raise ManifestError("The batch size must be at least 1.")
        if root is not None and not Path(root).is_dir():
            raise ManifestError(f"--root {root} is not a folder.")
        name, schema, factory, base = open_source(source, block_size=block_size, batch_size=batch_size)
        if root is not None:
            base = str(Path(root).absolute())
        resolver = _Resolver(base, base if root is not None else None)
        return cls(name, schema, factory, columns, resolver, batch_size)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The input columns, unchanged, in row order, at most ``batch_size`` rows per batch."""
        return rechunk(self._source(), self._batch_size)

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

    def _keys(self, batch: pa.RecordBatch, start: int) -> list[str]:
        ids = self._text(batch, self._id_i, "id")
        if ids is None:
            return [str(start + j) for j in range(batch.num_rows)]
        for j, value in enumerate(ids):
            if not value:
                raise ManifestError(
                    f"Row {start + j} of {self.name} has an empty {self._id_name!r}; "
                    "give every row an id, or map no id column."
                )
        return ids  # type: ignore[return-value]  # no None left: checked just above

    def scan(self) -> ManifestInfo:
        """One streaming pass: count rows, refuse duplicate or empty ids, compute the fingerprint.

        Raises ``ManifestError`` naming the first repeated id (in row order) and both 0-based row numbers.
        """
        digest = hashlib.sha256(b"thumbnail-ingest manifest v1\n")
        seen = array("Q")  # 8-byte id hashes, not the ids: 8 MB for a million rows
        rows = 0
        for batch in self.batches():
            keys = self._keys(batch, rows)
            paths = self._text(batch, self._path_i, "path") or []
            names = self._text(batch, self._name_i, "file-name") or [None] * batch.num_rows
            parts = []
            for key, path, file_name in zip(keys, paths, names, strict=True):
                # Length-prefixed cells, no separators: unambiguous, and blind to where batches split.
                for cell in (key, path, file_name):
                    parts.append("-" if cell is None else f"{len(cell)}:{cell}")
            digest.update("".join(parts).encode("utf-8", "surrogatepass"))
            if self._id_i is not None:
                seen.extend(_hash64(key) for key in keys)
            rows += batch.num_rows
        if self._id_i is not None and rows > 1:
            hashes = pa.Array.from_buffers(pa.uint64(), len(seen), [None, pa.py_buffer(seen)])
            # Sorting needs 16 bytes a row; a hash table (count_distinct) needed ~100 MB per million.
            ordered = hashes.take(pc.sort_indices(hashes))
            same = pc.equal(ordered.slice(1), ordered.slice(0, rows - 1))
            if pc.any(same).as_py():
                self._raise_duplicate(set(ordered.slice(1).filter(same).to_pylist()))
        return ManifestInfo(rows=rows, fingerprint=digest.hexdigest())

    def _raise_duplicate(self, repeated: set[int]) -> None:
        first: dict[str, int] = {}
        index = 0
        for batch in self.batches():  # second pass only over ids whose hash repeats
            for key in self._keys(batch, index):
                if _hash64(key) in repeated:
                    if key in first:
                        raise ManifestError(
                            f"The id {key!r} appears more than once in {self.name} "
                            f"(rows {first[key]} and {index}, counted from 0); ids must be unique."
                        )
                    first[key] = index
                index += 1
        # Only a 64-bit hash collision between different ids: nothing to report.

    def rows(self, start: int = 0) -> Iterator[Row]:
        """Stream ``Row``s from index ``start`` on, paths resolved (never opened).

        An empty path gives ``problem=("missing_path", ...)``; with a root, a path whose real location is
        outside it gives ``("outside_root", ...)``; a NUL character gives ``("invalid_path", ...)``.
        An empty id raises ``ManifestError`` (``scan`` finds it first).
        """
        resolve = self._resolver
        index = 0
        for batch in self.batches():
            if index + batch.num_rows <= start:
                index += batch.num_rows
                continue
            if start > index:
                batch = batch.slice(start - index)
                index = start
            keys = self._keys(batch, index)
            paths = self._text(batch, self._path_i, "path") or []
            names = self._text(batch, self._name_i, "file-name")
            for j, text in enumerate(paths):
                source, problem = resolve(text)
                file_name = (names[j] or None) if names is not None else None
                yield Row(index + j, keys[j], text or "", source, file_name, problem)
            index += batch.num_rows


def _hash64(key: str) -> int:
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")
