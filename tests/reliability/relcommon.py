"""Shared plumbing for the reliability scenarios: run the real CLI in a subprocess against an emulator and
read back what really happened (the emulator's counters and objects, the journal with sqlite3, the results).

Import as ``from relcommon import ...`` (pytest puts ``tests/reliability`` on ``sys.path``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.emulator import Emulator
from pipeline.samples import make_jpeg

__all__ = [
    "RssSampler",
    "Run",
    "cli_cmd",
    "cli_env",
    "events",
    "integrity",
    "journal_rows",
    "orphans",
    "photo_manifest",
    "results",
    "run_cli",
    "sha256",
    "wait_for",
]

FAST = ("--rate", "0", "--confirm-rate", "0")


def cli_cmd(emu: Emulator, manifest: Path, tmp: Path, *extra: str, fast: bool = True) -> list[str]:
    """``python -m pipeline ingest`` aimed at ``emu`` with results/journal in ``tmp`` and JSON logs."""
    return [sys.executable, "-m", "pipeline", "ingest", str(manifest), "--workspace", emu.workspace,
            "--endpoint", emu.base_url, "--out", str(tmp / "results.parquet"), "--journal", str(tmp / "j.sqlite"),
            "--no-progress", "--log-format", "json", *(FAST if fast else ()), *extra]


def cli_env(access_key: str, secret_key: str, home: Path | None = None) -> dict[str, str]:
    """The environment with the given key pair (and no other NCLOUD_/THUMBNAIL_INGEST_ variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NCLOUD_", "THUMBNAIL_INGEST_"))}
    env.update(NCLOUD_ACCESS_KEY=access_key, NCLOUD_SECRET_KEY=secret_key)
    if home is not None:
        env["HOME"] = str(home)
    return env


@dataclass
class Run:
    """A finished CLI run."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    rss_kib: list[int] = field(default_factory=list)


def run_cli(cmd: Sequence[str], env: dict[str, str], *, timeout: float = 300.0) -> Run:
    """Run ``cmd`` to completion and capture everything."""
    started = time.monotonic()
    proc = subprocess.run(list(cmd), env=env, capture_output=True, text=True, timeout=timeout)
    return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def events(stderr: str) -> list[dict[str, Any]]:
    """The JSON log lines of a ``--log-format json`` run (every non-empty stderr line must parse)."""
    out = []
    for line in stderr.splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def results(path: Path) -> list[dict[str, Any]]:
    """The results manifest's rows."""
    return pq.read_table(path).to_pylist()  # type: ignore[no-any-return]


def journal_rows(path: Path) -> list[dict[str, Any]]:
    """Every row of the journal's ``rows`` table, opened read-only with sqlite3 (not with the pipeline)."""
    # closing(): a connection left open (``with connect()`` does not close) would hold the journal's lock.
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("select * from rows order by key")]


def orphans(path: Path) -> set[str]:
    """The thumbnail keys the journal records as possible orphans."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return {k for (k,) in db.execute("select thumbnail_key from orphans")}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()



def photo_manifest(tmp: Path, rows: int, *, distinct: int | None = None, size: tuple[int, int] = (300, 300)) -> Path:
    """A CSV manifest of ``rows`` small JPEGs (quality 70); ``distinct`` files referenced round-robin when given."""
    photos = tmp / "photos"
    photos.mkdir(exist_ok=True)
    n_files = rows if distinct is None else distinct
    for i in range(n_files):
        make_jpeg(photos / f"p{i}.jpg", size[0], size[1] - (i % 7), seed=i, quality=70)
    lines = ["id,path"] + [f"k{i},photos/p{i % n_files}.jpg" for i in range(rows)]
    manifest = tmp / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.005) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class RssSampler:
    """Samples a process's VmRSS (KiB) from ``/proc/<pid>/status`` every ``every`` seconds in a thread."""

    def __init__(self, pid: int, every: float = 1.0) -> None:
        self.pid, self.every = pid, every
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _read(self) -> int | None:
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            value = self._read()
            if value is not None:
                self.samples.append(value)
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def integrity(journal: Path) -> set[str]:
    """Check the journal file with sqlite3 (``integrity_check``); return its table names."""
    with closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        return {t for (t,) in db.execute("select name from sqlite_master where type='table'")}


