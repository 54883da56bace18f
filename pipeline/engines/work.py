"""``work``: what an engine does for one job, wherever it runs (a pool thread or process, a Ray worker): read
the source if it is remote and not yet fetched, hash it when asked, prepare it. Pure and synchronous: the
records in and out are frozen and picklable, so the same function serves every engine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipeline.engines.heap import keep_freed_memory
from pipeline.fetch.outcomes import FetchRejected
from pipeline.fetch.refs import SourceRef
from pipeline.fetch.settings import FetchSettings
from pipeline.images import prepare
from pipeline.models import ImagePolicy, Prepared, Rejected

__all__ = ["Outcome", "Task", "hash_source", "warm", "work", "work_apart"]


def hash_source(source: Path | bytes) -> str | None:
    """sha256 of fetched bytes or of a local file (streamed, 1 MiB at a time); ``None`` when it cannot be
    read."""
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest()
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Task:
    """One job as an engine receives it: the source (a local file's path, the bytes the driver fetched, or a
    remote ``SourceRef`` the engine reads itself under ``fetch``), the image policy, and what to do."""

    source: Path | bytes | SourceRef = field(repr=False)
    policy: ImagePolicy
    fetch: FetchSettings | None = None
    """The bounds of reading a remote ``source`` (only for an engine that fetches)."""
    unless: str | None = None
    """A sha256: when the source's equals it, nothing is prepared (the row is unchanged)."""
    digest_only: bool = False
    """Only hash the source (``Outcome.out`` is ``None``)."""
    keep_data: bool = True
    """Hand back the prepared bytes; without (a dry run), a ``Prepared`` comes back with empty ``data`` and its
    length in ``Outcome.size``: an audit never carries the images to the driver."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What ``work`` did with a ``Task``: the prepared or rejected image (``None`` when only hashed, or when the
    source was unchanged), the source's sha256 when hashed, and for a source read here its fetch stamp, or the
    fetch's rejection (then nothing else)."""

    out: Prepared | Rejected | None = None
    digest: str | None = None
    fetched: bool = False
    """The source was read here: ``stamp`` is the version read (the driver journals it with the row)."""
    stamp: str | None = None
    refused: FetchRejected | None = None
    size: int | None = None
    """The prepared image's length in bytes when its ``data`` was left behind (``Task.keep_data`` off)."""


def work(task: Task) -> Outcome:
    """Do ``task``: read a remote source (``fetch.reader.read_source``: the ``Fetcher``'s reasons), hash it when
    ``unless`` or ``digest_only`` asks, prepare it (``images.prepare``, which never raises), keeping the prepared
    bytes only when ``keep_data`` asks. Raises nothing for a per-row problem: a source that cannot be read is
    ``Outcome.refused``."""
    keep_freed_memory()
    source, fetched, stamp = task.source, False, None
    if isinstance(source, SourceRef):
        from pipeline.fetch.reader import read_source  # only an engine that fetches needs the network code

        got = read_source(source, task.fetch or FetchSettings())
        if isinstance(got, FetchRejected):
            return Outcome(fetched=True, refused=got)
        source, fetched, stamp = got.data, True, got.stamp.value
    digest = None
    if task.digest_only or task.unless is not None:
        digest = hash_source(source)
        if task.digest_only or (digest is not None and digest == task.unless):
            return Outcome(None, digest, fetched, stamp)
    out = prepare(source, task.policy)
    if isinstance(out, Prepared) and not task.keep_data:
        return Outcome(replace(out, data=b""), digest, fetched, stamp, size=len(out.data))
    return Outcome(out, digest, fetched, stamp)


def work_apart(task: Task) -> tuple[Outcome, bytes]:
    """``work``, with the prepared bytes apart from the rest: ``(outcome, data)``, where a ``Prepared`` in the
    outcome has empty ``data`` and its length in ``Outcome.size`` (``data`` is ``b""`` when there is none to
    keep). A Ray task's two returns: the driver takes the small one first, and the bytes only once its budget
    has room for them."""
    outcome = work(task)
    out = outcome.out
    if isinstance(out, Prepared) and outcome.size is None:
        return replace(outcome, out=replace(out, data=b""), size=len(out.data)), out.data
    return outcome, b""


def warm() -> None:
    """Run on a fresh worker before its first job: the imports every job needs (Pillow's plugins are loaded on
    the first image)."""
    prepare(b"")
