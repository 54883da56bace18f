"""Bounded-memory helpers for one pass over millions of rows: uniform samples and capped counters.

``BottomK`` is reservoir sampling done with Arrow: every offered row draws a uniform random key and the
sample keeps the ``k`` rows with the smallest keys (a uniform sample without replacement). Only rows whose
key beats the current ``k``-th smallest are ever turned into Python objects, so after the first batches a
million rows cost a vectorised compare each. Keys come from a seeded generator: the same file gives the same
sample.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Generic, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["BottomK", "BoundedCounter"]

T = TypeVar("T")


class BottomK(Generic[T]):
    """A uniform sample of at most ``k`` rows out of all rows offered (for a sample per group, keep one per
    group); ``seen`` counts the rows offered."""

    def __init__(self, k: int, seed: int) -> None:
        self.k = k
        self.seed = seed
        self.seen = 0
        self._heap: list[tuple[float, int, T]] = []  # max-heap by key, stored negated
        self._offers = 0

    def offer(self, batch: pa.RecordBatch, build: Callable[[dict[str, object]], T]) -> None:
        """Offer every row of ``batch``; ``build`` turns a kept row (as a column -> value dict) into a sample."""
        n = batch.num_rows
        self.seen += n
        self._offers += 1
        if n == 0 or self.k <= 0:
            return
        keys = pc.random(n, initializer=self.seed * 1_000_003 + self._offers)
        if len(self._heap) >= self.k:
            threshold = -self._heap[0][0]
            mask = pc.less(keys, threshold)
            batch, keys = batch.filter(mask), keys.filter(mask)
            if batch.num_rows == 0:
                return
        if batch.num_rows > self.k:  # only the k best of this batch can matter
            best = pc.bottom_k_unstable(keys, k=self.k)
            batch, keys = batch.take(best), keys.take(best)
        for key, row in zip(keys.to_pylist(), batch.to_pylist(), strict=True):
            item = (-float(key), self._offers * 1_000_000 + len(self._heap), build(row))
            if len(self._heap) < self.k:
                heapq.heappush(self._heap, item)
            elif item[0] > self._heap[0][0]:
                heapq.heapreplace(self._heap, item)

    def items(self) -> list[T]:
        """The sample, in the order of the keys drawn (a random order)."""
        return [item for _, _, item in sorted(self._heap, key=lambda entry: -entry[0])]


class BoundedCounter:
    """Counts per value for at most ``limit`` distinct values; values first seen past the limit are counted in
    ``overflow`` (rows) and make ``exact`` false, so memory stays bounded whatever the file holds."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: dict[str, int] = {}
        self.overflow = 0

    @property
    def exact(self) -> bool:
        """Whether every value got its own count."""
        return self.overflow == 0

    def add_counts(self, values: pa.Array) -> None:
        """Count the non-null values of ``values`` (a string array)."""
        if len(values) == 0 or values.null_count == len(values):
            return
        counted = pc.value_counts(values.drop_null())
        for value, count in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True):
            self.add(str(value), int(count))

    def add(self, value: str, count: int = 1) -> None:
        """Add ``count`` rows of ``value``."""
        if value in self.counts:
            self.counts[value] += count
        elif len(self.counts) < self.limit:
            self.counts[value] = count
        else:
            self.overflow += count

    def most_common(self, n: int | None = None) -> list[tuple[str, int]]:
        """``(value, count)`` by count descending, then value; all of them when ``n`` is ``None``."""
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return ranked if n is None else ranked[:n]
