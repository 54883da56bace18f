"""Local path cells to checked paths: joined to the base folder, and with a root, contained in it (real
locations, symlinks followed). URL cells are ``fetch.SourceParser``'s."""

from __future__ import annotations

import os

from pipeline.fetch.refs import cached_realpath

__all__ = ["MISSING_PATH", "NUL_PATH", "LocalResolver", "no_path"]

MISSING_PATH = ("missing_path", "the path cell is empty")
NUL_PATH = ("invalid_path", "the path contains a NUL character")


def no_path(text: str | None) -> bool:
    """Whether a path cell is empty (missing, blank or only whitespace)."""
    return not text or text.isspace()


class LocalResolver:
    """Turns a path cell into ``(source, problem)``, the source as text (no ``Path`` a row); cheap enough for a
    million rows.

    With a root, every path's real location must lie inside the root's real location. The realpath of
    each folder is cached (rows of one manifest share few folders), so a row costs one ``lstat`` of the
    file itself, needed to see whether the file is a symlink that points elsewhere.
    """

    def __init__(self, base: str, root: str | None) -> None:
        self.base = base
        remote = root is not None and "://" in root[:16]  # a URL root: its cells never come here
        self.root = os.path.realpath(root) if root is not None and not remote else root
        if self.root is not None and not remote:
            self.prefix = self.root if self.root.endswith(os.sep) else self.root + os.sep
        self._dirs: dict[str, str] = {}

    def __call__(self, text: str | None) -> tuple[str | None, tuple[str, str] | None]:
        if no_path(text):
            return None, MISSING_PATH
        assert text is not None  # _no_path is true for None
        if "\x00" in text:
            return None, NUL_PATH
        # os.path on str, not pathlib: several times cheaper per row, and a million rows add up.
        joined = os.path.join(self.base, text)  # noqa: PTH118  # an absolute cell replaces the base
        if self.root is None:
            return joined, None
        real = self._realpath(joined)
        if real != self.root and not real.startswith(self.prefix):
            return None, ("outside_root", f"the path resolves to {real}, outside --root {self.root}")
        # Hand on the checked real location, so what is opened later is what was checked here.
        return real, None

    def _realpath(self, joined: str) -> str:
        return cached_realpath(self._dirs, joined)
