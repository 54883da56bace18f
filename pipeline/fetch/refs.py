"""Where a row's bytes live: ``SourceRef`` parsed from a manifest cell, or a ``Problem`` saying why not.

A cell is a local path (relative to the manifest's folder or ``--root``, or absolute), or an ``s3://``,
``gs://``, ``http(s)://`` or ``file://`` URL. ``--root`` (and the base) may themselves be such a prefix:
relative cells join it, and with a root every source must lie inside it (``outside_root``), local paths
checked through symlinks with ``os.path.realpath`` exactly as ``pipeline.manifest`` always did. Parsing
touches the network never and the disk only for that realpath check, so it is cheap for a million rows.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

__all__ = [
    "REMOTE_SCHEMES",
    "Problem",
    "SourceParser",
    "SourceRef",
    "cached_realpath",
    "no_path",
    "parse_source",
    "root_location",
    "root_problem",
]

REMOTE_SCHEMES = ("s3", "gs", "http", "https")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_MISSING = ("missing_path", "the path cell is empty")
_NUL = ("invalid_path", "the path contains a NUL character")


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a cell names no fetchable source: a stable snake_case ``reason`` and a one-sentence ``detail``."""

    reason: str
    detail: str


class SourceRef(NamedTuple):
    """One source. ``scheme`` is ``file``, ``s3``, ``gs``, ``http`` or ``https``; ``bucket`` the bucket (s3,
    gs) or ``host[:port]`` (http, https), empty for files; ``key`` the object key (s3, gs), the path and query
    (http, https, starting with ``/``) or the file's path (file). A named tuple: a manifest's every cell makes
    one, and a tuple costs a fraction of a frozen dataclass."""

    scheme: str
    bucket: str
    key: str

    @property
    def is_local(self) -> bool:
        """Whether the source is a file on this machine."""
        return self.scheme == "file"

    @property
    def path(self) -> Path:
        """The local file (only meaningful when ``is_local``)."""
        return Path(self.key)

    @property
    def url(self) -> str:
        """The full address (for a local file its path): what is fetched. May hold a signed query string:
        never log it; log ``display``."""
        if self.is_local:
            return self.key
        if self.scheme in ("http", "https"):
            return f"{self.scheme}://{self.bucket}{self.key}"
        return f"{self.scheme}://{self.bucket}/{self.key}"

    @property
    def display(self) -> str:
        """The address without its query string: safe for logs, details and results."""
        return self.url.split("?", 1)[0] if not self.is_local else self.key

    @property
    def store(self) -> str:
        """Names the store this source is read through (one client per store): ``scheme://bucket``."""
        return f"{self.scheme}://{self.bucket}"


@dataclass(frozen=True, slots=True)
class _Prefix:
    """A remote base or root: ``scheme://bucket/prefix`` (``prefix`` without leading/trailing slashes)."""

    scheme: str
    bucket: str
    prefix: str

    def join(self, relative: str, *, confined: bool) -> SourceRef | Problem:
        """``relative`` under this prefix; climbing above the bucket is ``outside_root`` when the prefix is
        the root (``confined``), else ``invalid_path`` (no such key can exist)."""
        query = ""
        if self.scheme in ("http", "https") and "?" in relative:
            relative, query = relative.split("?", 1)
            query = "?" + query
        joined = posixpath.normpath(posixpath.join("/", self.prefix, relative)).lstrip("/")
        climbed = posixpath.normpath(posixpath.join(self.prefix, relative)).startswith("..")
        if climbed or not joined:
            if confined:
                return Problem("outside_root", f"{relative!r} climbs out of --root {self}")
            return Problem("invalid_path", f"{relative!r} climbs above {self.scheme}://{self.bucket}/")
        if self.scheme in ("http", "https"):
            return SourceRef(self.scheme, self.bucket, "/" + joined + query)
        return SourceRef(self.scheme, self.bucket, joined)

    def contains(self, ref: SourceRef) -> bool:
        if ref.scheme != self.scheme or ref.bucket != self.bucket:
            return False
        key = ref.key.split("?", 1)[0] if self.scheme in ("http", "https") else ref.key
        # S3 keys have no folders, but a gateway may normalise "..": judge the key as a path would resolve.
        key = posixpath.normpath("/" + key).lstrip("/") if key.strip("/") else ""
        return not self.prefix or key == self.prefix or key.startswith(self.prefix + "/")

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}" + ("/" if self.prefix else "")


def _remote(scheme: str, text: str) -> SourceRef | Problem:
    """An absolute ``s3://``/``gs://``/``http(s)://`` cell as a ``SourceRef``."""
    rest = text[len(scheme) + 3:]
    if scheme in ("s3", "gs"):
        bucket, _, key = rest.partition("/")
        if not bucket:
            return Problem("invalid_path", f"{scheme}:// URL without a bucket")
        if not key:
            return Problem("invalid_path", f"{scheme}://{bucket}/ names a bucket, not an object")
        return SourceRef(scheme, bucket, key)
    parts = urlsplit(text)
    if "@" in parts.netloc:  # user:password@host would put a credential into every log line naming it
        return Problem("unsupported_source", "URLs with credentials (user:password@host) are not supported")
    if not parts.hostname:
        return Problem("invalid_path", f"{scheme}:// URL without a host")
    key = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return SourceRef(scheme, parts.netloc, key)


def root_location(value: str | os.PathLike[str]) -> Path | str:
    """A ``--root`` as given: any ``scheme://`` text stays text exactly as written (``s3://b/p`` would become
    ``s3:/b/p`` as a ``Path``), except a ``file://`` URL on this machine, which becomes its folder's ``Path``;
    anything else is a local folder (a ``Path``). Never raises: ``root_problem`` judges the text."""
    if isinstance(value, str) and _SCHEME.match(value):
        local = _local_text(value)
        return Path(local) if local != value else value
    return Path(value)


def root_problem(text: str) -> str | None:
    """Why the remote ``--root`` ``text`` cannot be used, as the end of a sentence; ``None`` when it can.

    The sentence never repeats a credential or a query string (they would reach logs and exit messages).
    """
    match = _SCHEME.match(text)
    scheme = match.group(1).lower() if match else ""
    if scheme not in REMOTE_SCHEMES:
        return (f"the {scheme}:// scheme is not read (s3://, gs://, http(s)://, file:// or a local folder)"
                if scheme != "file" else "a file:// root must be a folder on this machine (file:///path)")
    if scheme in ("s3", "gs"):
        if not text[len(scheme) + 3:].partition("/")[0]:
            return f"{scheme}:// needs a bucket ({scheme}://bucket/prefix)"
        if "?" in text or "#" in text:
            return "a root is a bucket and prefix; it cannot hold ? or #"
        return None
    try:
        parts = urlsplit(text)
        host = parts.hostname
        _ = parts.port
    except ValueError:  # a malformed port or IPv6 literal
        return f"it is not a valid {scheme}:// URL"
    if "@" in parts.netloc:
        return "URLs with credentials (user:password@host) are not supported"
    if not host:
        return f"{scheme}:// needs a host ({scheme}://host/prefix)"
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        return "a root is a host and a path; it cannot hold a query string or a fragment"
    return None


def _file_path(text: str) -> str | Problem:
    parts = urlsplit(text)
    if parts.netloc not in ("", "localhost"):
        return Problem("unsupported_source", f"file:// URL on another host ({parts.netloc}) cannot be read")
    if not parts.path:
        return Problem("invalid_path", "file:// URL without a path")
    return unquote(parts.path)


def _remote_prefix(text: str) -> _Prefix | None:
    match = _SCHEME.match(text)
    if not match or match.group(1).lower() not in REMOTE_SCHEMES:
        return None
    scheme = match.group(1).lower()
    if scheme in ("s3", "gs"):
        bucket, _, prefix = text[len(scheme) + 3:].partition("/")
    else:
        parts = urlsplit(text)
        bucket, prefix = parts.netloc, parts.path
    return _Prefix(scheme, bucket, prefix.strip("/"))


class SourceParser:
    """Parses the cells of one manifest: ``parser(cell) -> SourceRef | Problem``.

    ``base`` (default: the current folder) is what relative cells join when there is no ``root``; ``root``
    both replaces the base and confines every source to itself. Either may be a local folder or an
    ``s3://``, ``gs://``, ``http(s)://`` prefix; ``file://`` is accepted as a local folder. With a remote base
    and no local root (a manifest read from a URL), an absolute path or ``file://`` cell is ``outside_root``: a
    remote manifest's rows stay remote. The realpath of
    each local folder is cached (rows share few folders), so a local row costs one ``lstat`` of its file.
    """

    def __init__(self, *, base: str | None, root: str | None) -> None:
        base = _local_text(base) if base is not None else None
        root = _local_text(root) if root is not None else None
        self._root_remote = _remote_prefix(root) if root is not None else None
        self._root_local: str | None = None
        if root is not None and self._root_remote is None:
            self._root_local = os.path.realpath(root)
            real = self._root_local
            self._root_prefix = real if real.endswith(os.sep) else real + os.sep
        start = root if root is not None else (base if base is not None else os.getcwd())  # noqa: PTH109
        self._base_remote = _remote_prefix(start)
        self._base_local = start if self._base_remote is None else os.getcwd()  # noqa: PTH109
        self._dirs: dict[str, str] = {}

    def __call__(self, cell: str | None) -> SourceRef | Problem:
        """The source a cell names, or the problem with it; never raises for any text."""
        if not cell or cell.isspace():  # as no_path says, inline for the type checker
            return Problem(*_MISSING)
        if "\x00" in cell:
            return Problem(*_NUL)
        match = _SCHEME.match(cell) if "://" in cell else None  # most cells are plain paths: no regex
        scheme = match.group(1).lower() if match else None
        ref: SourceRef | Problem
        if scheme is None:
            if self._base_remote is not None and not cell.startswith("/"):
                ref = self._base_remote.join(cell, confined=self._root_remote is not None)
            elif self._base_remote is not None and self._root_local is None:
                return self._local_refused(cell)
            else:
                # os.path on str, not pathlib: several times cheaper per row, and a million rows add up.
                ref = SourceRef("file", "", os.path.join(self._base_local, cell))  # noqa: PTH118
        elif scheme == "file":
            path = _file_path(cell)
            if not isinstance(path, Problem) and self._base_remote is not None and self._root_local is None:
                return self._local_refused(path)
            ref = path if isinstance(path, Problem) else SourceRef("file", "", path)
        elif scheme in REMOTE_SCHEMES:
            ref = _remote(scheme, cell)
        else:
            return Problem("unsupported_source", f"the {scheme}:// scheme is not read (s3, gs, http, https, file)")
        return ref if isinstance(ref, Problem) else self._confine(ref)

    def _local_refused(self, path: str) -> Problem:
        """A local file named by a remote manifest (its base is a URL): never read, whatever the path says, so
        a manifest from the web cannot make this machine upload its files."""
        return Problem("outside_root", f"{path} is a local file, and a manifest read from "
                       f"{self._base_remote} may name only remote sources")

    def _confine(self, ref: SourceRef) -> SourceRef | Problem:
        if self._root_remote is not None:
            if self._root_remote.contains(ref):
                return ref
            return Problem("outside_root", f"{ref.display} is outside --root {self._root_remote}")
        if self._root_local is None:
            return ref
        if not ref.is_local:
            return Problem("outside_root", f"{ref.display} is outside --root {self._root_local}")
        real = self._realpath(ref.key)
        if real != self._root_local and not real.startswith(self._root_prefix):
            return Problem("outside_root", f"the path resolves to {real}, outside --root {self._root_local}")
        # Hand on the checked real location, so what is opened later is what was checked here.
        return SourceRef("file", "", real)

    def _realpath(self, joined: str) -> str:
        return cached_realpath(self._dirs, joined)


def no_path(text: str | None) -> bool:
    """Whether a path cell is empty (missing, blank or only whitespace)."""
    return not text or text.isspace()


def _local_text(text: str) -> str:
    """A ``file://`` base or root as a plain folder path; anything else unchanged."""
    if text.lower().startswith("file://"):
        path = _file_path(text)
        return path if isinstance(path, str) else text
    return text


def cached_realpath(folders: dict[str, str], joined: str) -> str:
    """``os.path.realpath(joined)`` for a million rows: each folder's realpath is cached in ``folders`` (rows
    share few folders), so a row costs one ``lstat`` of its file, to see whether it is a symlink."""
    head, tail = os.path.split(joined)
    if tail in ("", ".", ".."):
        return os.path.realpath(joined)
    real_head = folders.get(head)
    if real_head is None:
        if len(folders) >= 8192:  # bound the cache; a manifest over many folders just re-resolves
            folders.clear()
        real_head = folders[head] = os.path.realpath(head)
    full = os.path.join(real_head, tail)  # noqa: PTH118
    return os.path.realpath(full) if os.path.islink(full) else full  # noqa: PTH114


def parse_source(cell: str, *, base: str | None, root: str | None) -> SourceRef | Problem:
    """The source ``cell`` names (see ``SourceParser``); for many cells build one ``SourceParser`` instead."""
    return SourceParser(base=base, root=root)(cell)
