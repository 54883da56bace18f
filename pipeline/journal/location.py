"""Where the default journal lives: one per endpoint and workspace in the user's state folder.

The journal holds the state of row keys for one workspace, not of one manifest, so its default place follows
the workspace: ``<state folder>/journals/<endpoint host-port>/<workspace>.sqlite``. Any manifest, dated file or
DataFrame naming the same keys, from the CLI or the Python API, resumes from the same state. The state folder
is ``platformdirs.user_state_dir("thumbnail-ingest")`` (it honours ``XDG_STATE_HOME``), or
``THUMBNAIL_INGEST_STATE_DIR`` when set.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

__all__ = ["STATE_DIR_ENV", "default_journal", "legacy_journal", "manifest_stem", "safe_name", "state_folder"]

STATE_DIR_ENV = "THUMBNAIL_INGEST_STATE_DIR"
_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_MAX = 60  # characters kept of a name before its hash suffix: readable, and far below any filesystem's limit


def state_folder() -> Path:
    """The folder the default journals live under: ``$THUMBNAIL_INGEST_STATE_DIR``, else the user's state
    folder (``platformdirs``; ``$XDG_STATE_HOME/thumbnail-ingest`` on Linux)."""
    chosen = os.environ.get(STATE_DIR_ENV)
    if chosen:
        return Path(chosen).expanduser()
    return Path(platformdirs.user_state_dir("thumbnail-ingest", appauthor=False))


def safe_name(text: str) -> str:
    """``text`` as a readable file name: lower case, runs of characters other than ``a-z 0-9 . _ -`` become
    ``_``; when that changed anything (case included, so case-blind file systems cannot merge two names),
    a hash of the original is appended, so two different texts never share a name."""
    cleaned = _UNSAFE.sub("_", text.lower())[:_MAX].strip(".") or "_"
    if cleaned == text:
        return cleaned
    return f"{cleaned}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


def _host_port(endpoint: str) -> str:
    """``https://mi.example.com/api`` -> ``mi.example.com-443``: the endpoint's host and port (its default
    one when not written), so the same service reached by two spellings shares one journal."""
    url = urlsplit(endpoint)
    host = url.hostname or "endpoint"
    try:
        port = url.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if url.scheme == "https" else 80
    return f"{host}-{port}"


def default_journal(endpoint: str, workspace: str) -> Path:
    """The default journal of ``workspace`` at ``endpoint``:
    ``<state folder>/journals/<host-port>/<workspace>.sqlite`` (both parts made file-name safe)."""
    return state_folder() / "journals" / safe_name(_host_port(endpoint)) / f"{safe_name(workspace)}.sqlite"


def manifest_stem(manifest: Path) -> str:
    """The manifest's name without its format suffix (``photos.2024-05.csv.gz`` -> ``photos.2024-05``)."""
    stem = manifest.name
    for suffix in (".csv.gz", ".tsv.gz", manifest.suffix):
        if suffix and stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def legacy_journal(manifest: Path) -> Path:
    """Where releases before this one put a manifest's journal by default: ``<stem>.journal.sqlite`` beside
    it (``photos.csv.gz`` -> ``photos.journal.sqlite``)."""
    return manifest.with_name(manifest_stem(manifest) + ".journal.sqlite")
