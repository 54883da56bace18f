"""``Contents``: byte-identical sources within a run. The first row with a content registers it; a later one is
told which row it duplicates (``duplicate_of``) and, with ``--dedupe``, waits for that row's key instead of
uploading the same bytes again.

The contract, held in code: the row that registered a content must ``settle`` it once its upload is over (with
its key, or ``None``), or the rows waiting on it would wait for ever. ``Ready.settle`` is the one handle the
upload stage gets for this; it is idempotent, and the upload stage calls it in a ``finally``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pipeline.journal import Journal
from pipeline.models import Row

__all__ = ["Contents"]


@dataclass
class _Content:
    """A content being uploaded in this run: later identical rows wait on ``key``."""

    first_key: str
    key: asyncio.Future[str | None]


class Contents:
    """The contents seen this run, and the journal's uploaded ones (``find_by_sha256``)."""

    def __init__(self, journal: Journal, *, dedupe: bool) -> None:
        self.journal, self.dedupe = journal, dedupe
        self._seen: dict[str, _Content] = {}

    async def check(self, row: Row, sha256: str) -> tuple[str | None, str | None]:
        """``(duplicate_of, key to reuse)`` for ``row`` with content ``sha256``: the row whose content it repeats
        (this run's, or the journal's), and, with ``--dedupe``, that row's key (waited for when it is still
        being uploaded; ``None`` when that upload did not end uploaded). A first sight registers ``row``, which
        must then ``settle``."""
        entry = self._seen.get(sha256)
        if entry is not None:
            if not self.dedupe:
                return entry.first_key, None
            return entry.first_key, await asyncio.shield(entry.key)
        found = self.journal.find_by_sha256(sha256)
        if found is not None and found[0] != row.key:
            return found[0], (found[1] if self.dedupe else None)
        self._seen[sha256] = _Content(row.key, asyncio.get_running_loop().create_future())
        return None, None

    def settle(self, row: Row, sha256: str, key: str | None) -> None:
        """Hand ``key`` to the rows waiting on ``row``'s content; only the row that registered it may (for any
        other row, and a second time, nothing happens)."""
        entry = self._seen.get(sha256)
        if entry is None or entry.first_key != row.key:
            return
        del self._seen[sha256]
        if not entry.key.done():
            entry.key.set_result(key)

    @property
    def waiting(self) -> int:
        """Contents registered and not yet settled (0 at the end of a run: nothing was left waiting)."""
        return len(self._seen)
