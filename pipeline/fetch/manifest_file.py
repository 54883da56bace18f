"""A manifest that lives at an ``s3://``, ``gs://`` or ``http(s)://`` URL, downloaded to a temporary file.

The manifest reader opens files; this gives it one. The download streams to disk (memory stays flat),
is capped in size, and uses the fetch stage's transports, retries and guards (redirects, link-local
refusal, credentials from the environment).
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import tempfile
import threading
from pathlib import Path

from pipeline.errors import ManifestError
from pipeline.fetch.fetcher import Fetcher
from pipeline.fetch.limits import SourceAccessError
from pipeline.fetch.outcomes import FetchRejected
from pipeline.fetch.refs import REMOTE_SCHEMES, Problem, parse_source
from pipeline.fetch.settings import FetchSettings

__all__ = ["MANIFEST_MAX_BYTES", "is_remote_manifest", "open_remote_manifest"]

MANIFEST_MAX_BYTES = 16 << 30
"""Largest manifest downloaded (16 GiB: far beyond any million-row manifest; a guard against a wrong URL)."""


def is_remote_manifest(source: object) -> bool:
    """Whether ``source`` is a text naming a remote manifest (``s3://``, ``gs://``, ``http(s)://``)."""
    return isinstance(source, str) and source.split("://", 1)[0].lower() in REMOTE_SCHEMES and "://" in source


def open_remote_manifest(url: str, settings: FetchSettings | None = None, *,
                         max_bytes: int = MANIFEST_MAX_BYTES) -> Path:
    """Download the manifest at ``url`` to a new temporary file with the same extension (``.csv``,
    ``.csv.gz``, ``.parquet``, ...) and return its path; the caller deletes it when done.

    Safe to call from inside a running event loop (the download runs on its own loop in a helper thread).
    Raises ``ManifestError`` with one sentence (no secret, no query string) when it cannot be had.
    """
    ref = parse_source(url, base=None, root=None)
    if isinstance(ref, Problem) or ref.is_local:
        detail = ref.detail if isinstance(ref, Problem) else "not a remote URL"
        raise ManifestError(f"The manifest URL cannot be read: {detail}.")
    name = posixpath.basename(ref.display.rstrip("/")) or "manifest"
    suffix = "".join(Path(name).suffixes[-2:])
    fd, temp = tempfile.mkstemp(prefix="manifest-", suffix=suffix)
    os.close(fd)
    path = Path(temp)
    outcome: list[object] = []

    async def download() -> None:
        async with Fetcher(settings or FetchSettings()) as fetcher:
            outcome.append(await fetcher.download(ref, path, max_bytes))

    def run() -> None:
        try:
            asyncio.run(download())
        except SourceAccessError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, name="manifest-download")
    worker.start()
    worker.join()
    result = outcome[0] if outcome else None
    if isinstance(result, (FetchRejected, SourceAccessError)) or result is None:
        path.unlink(missing_ok=True)
        why = result.detail if isinstance(result, FetchRejected) else str(result or "the download stopped")
        raise ManifestError(f"The manifest {ref.display} cannot be downloaded: {why}.")
    return path
