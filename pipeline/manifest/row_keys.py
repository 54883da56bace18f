"""Row keys: a path cell's key (``path_key``), the 8-byte hashes the duplicate check keeps per row, finding
repeats among them by sorting, and the sentence that names a repeated key."""

from __future__ import annotations

import hashlib
from array import array

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["duplicate_message", "hash64", "path_key", "repeated_hashes"]


def path_key(cell: str, *, web_base: bool) -> str:
    """The key of a row keyed by its path ``cell``: the cell as written, but an ``http(s)://`` source's query
    string is not part of its identity (a presigned URL is signed anew each night; the same photo must keep its
    row). ``web_base``: relative cells join an ``http(s)://`` folder (a manifest read from the web). An
    ``s3://``/``gs://`` key or a local path keeps its ``?``: there it is part of the name."""
    if "?" not in cell:
        return cell
    scheme = cell[:8].lower()
    if scheme.startswith(("http://", "https://")) or (web_base and "://" not in cell[:16]):
        return cell.split("?", 1)[0]
    return cell


def hash64(key: str) -> int:
    """An 8-byte hash of a row key (BLAKE2b): what ``scan`` keeps per row instead of the key."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def repeated_hashes(seen: array[int]) -> set[int]:
    """The hashes that occur more than once in ``seen`` (unsigned 64-bit, one per row)."""
    rows = len(seen)
    if rows < 2:
        return set()
    hashes = pa.Array.from_buffers(pa.uint64(), rows, [None, pa.py_buffer(seen)])
    # Sorting needs 16 bytes a row; a hash table (count_distinct) needed ~100 MB per million.
    ordered = hashes.take(pc.sort_indices(hashes))
    same = pc.equal(ordered.slice(1), ordered.slice(0, rows - 1))
    if not pc.any(same).as_py():
        return set()
    return set(ordered.slice(1).filter(same).to_pylist())


def duplicate_message(name: str, key: str, row: int, pathless: bool, again: int, *, has_id: bool) -> str:
    """The sentence for ``key`` seen at 0-based rows ``row`` and ``again`` of the manifest ``name``; ``pathless``:
    the first row had no path (its key is ``#row-<n>``); ``has_id``: the manifest has an id column."""
    if has_id:
        return (
            f"The id {key!r} appears more than once in {name} (rows {row} and {again}, counted from 0); "
            "ids must be unique."
        )
    if pathless:  # a real path cell that happens to read "#row-3", and row 3 has no path
        return (
            f"Row {again} of {name} has the path {key!r}, which is the key of row {row} (a row without "
            "a path); add an id column (--id-column) to key the rows."
        )
    return (
        f"The path {key!r} appears more than once in {name} (rows {row} and {again}, counted from 0); "
        "without an id column a row's key is its path: remove the repeated row, or add an id column "
        "(--id-column) to list one file twice."
    )
