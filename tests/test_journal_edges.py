"""The journal's edges: two roles naming one file, a damaged journal, a state this release never writes,
and a journal on a read-only mount (a real run refuses it in one sentence; a dry run and a report read it)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import write_manifest

from pipeline import runner
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.errors import ConfigError
from pipeline.models import ExitCode
from pipeline.python_api import make_settings
from pipeline.report.journal_view import read_journal
from pipeline.samples import make_jpeg

FAST = {"rate": 0.0, "confirm_rate": 0.0, "progress": False}
pytestmark = pytest.mark.parametrize("emulator", [EmulatorConfig(rate=0, confirm_rate=0)], indirect=True)


def _presigns(emu: Emulator) -> int:
    return int(emu.counters.snapshot(arrivals=False)["presign_calls"])


def _manifest(folder: Path, n: int, name: str = "m.csv") -> Path:
    for i in range(n):
        if not (folder / f"p{i}.jpg").exists():
            make_jpeg(folder / f"p{i}.jpg", 300, 280, seed=i, quality=70)
    return write_manifest(folder / name, [{"id": f"k{i}", "path": f"p{i}.jpg"} for i in range(n)])


def _settings(emu: Emulator, **kw: Any) -> Any:
    return make_settings(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
                         **{**FAST, **kw})


async def test_two_roles_naming_one_file_are_refused_before_anything(emulator: Emulator, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 3)
    journal = tmp_path / "state.parquet"  # a journal may have any name: this one could pass for results
    await runner.run_async(_settings(emulator, journal=journal, out=tmp_path / "r.parquet"), manifest)
    before = journal.read_bytes()
    (tmp_path / "link.parquet").symlink_to(journal)
    (tmp_path / "sub").mkdir()
    same = "are the same file"
    journal_role = r"the journal \(--journal\)"
    out_journal, manifest_journal = rf"results \(--out\) and {journal_role}", rf"manifest and {journal_role}"
    cases = [
        ({"journal": journal, "out": tmp_path / "sub" / ".." / "state.parquet"}, out_journal),
        ({"journal": journal, "out": tmp_path / "link.parquet"}, out_journal),
        ({"journal": Path(os.path.relpath(journal))}, out_journal),
        ({"journal": manifest, "out": tmp_path / "r2.parquet"}, manifest_journal),
        ({"journal": tmp_path / "r.html", "report": tmp_path / "r.html"},
         r"journal \(--journal\) and the report \(--report\)"),
    ]
    for options, refused in cases:
        options = {"out": journal, **options}
        with pytest.raises(ConfigError, match=f"The {refused} {same}"):
            await runner.run_async(_settings(emulator, **options), manifest)
    assert journal.read_bytes() == before and _presigns(emulator) == 3 and not (tmp_path / "r.html").exists()
    proc = subprocess.run(  # through the command: exit 2, one line
        [sys.executable, "-m", "pipeline", "ingest", str(manifest), "--workspace", emulator.workspace,
         "--endpoint", emulator.base_url, "--journal", str(journal), "--out", str(tmp_path / "link.parquet")],
        env={**os.environ, "NCLOUD_ACCESS_KEY": emulator.credentials.access_key,
             "NCLOUD_SECRET_KEY": emulator.credentials.secret_key},
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == ExitCode.USAGE and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert same in proc.stderr and journal.read_bytes() == before


def _damage_a_page(path: Path) -> None:
    """Zeros over a page in the middle of the rows table: the sort of damage a bad disk or a copy cut short
    leaves."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        (page,) = db.execute("PRAGMA page_size").fetchone()
        (pages,) = db.execute("PRAGMA page_count").fetchone()
    assert pages > 4
    with path.open("r+b") as fh:
        fh.seek(page * (pages // 2))
        fh.write(b"\0" * page)


@pytest.mark.parametrize("harm", ["zeros", "truncated", "weird"])
async def test_a_damaged_or_strange_journal_stops_in_one_sentence(emulator: Emulator, tmp_path: Path,
                                                                  harm: str) -> None:
    journal = tmp_path / "j.sqlite"
    await runner.run_async(_settings(emulator, journal=journal), _manifest(tmp_path, 40, "first.csv"))
    with contextlib.closing(sqlite3.connect(journal)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if harm == "zeros":
        _damage_a_page(journal)
    elif harm == "truncated":
        os.truncate(journal, journal.stat().st_size // 2)
    else:
        with contextlib.closing(sqlite3.connect(journal)) as db:
            db.execute("UPDATE rows SET status = 'weird' WHERE key = 'k3'")
            db.commit()
    expected = "holds row states this release never writes .'weird'." if harm == "weird" else "is damaged"
    manifest = _manifest(tmp_path, 45)
    with pytest.raises(ConfigError, match=expected):
        await runner.run_async(_settings(emulator, journal=journal), manifest)
    with pytest.raises(ConfigError, match=expected):  # a dry run says the same, before planning anything
        await runner.run_async(_settings(emulator, journal=journal, dry_run=True), manifest)
    assert _presigns(emulator) == 40  # nothing uploaded
    if harm == "weird":  # through the command: exit 2, one line, no traceback
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", "ingest", str(manifest), "--workspace", emulator.workspace,
             "--endpoint", emulator.base_url, "--journal", str(journal), "--no-progress"],
            env={**os.environ, "NCLOUD_ACCESS_KEY": emulator.credentials.access_key,
                 "NCLOUD_SECRET_KEY": emulator.credentials.secret_key},
            capture_output=True, text=True, timeout=60)
        assert proc.returncode == ExitCode.USAGE, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "'weird'" in proc.stderr


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only: a read-only bind mount when running as root (root writes through permission
    bits), else its and its files' write bits removed."""
    if os.geteuid() == 0:
        done = subprocess.run(f"mount --bind '{folder}' '{folder}' && mount -o remount,bind,ro '{folder}'",
                              shell=True, capture_output=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", str(folder)], capture_output=True, check=False)
            pytest.skip("a read-only bind mount needs mount rights")
        try:
            yield
        finally:
            if subprocess.run(["umount", str(folder)], capture_output=True, check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
        return
    modes = {p: p.stat().st_mode for p in [folder, *folder.iterdir()]}
    for p in modes:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


async def test_a_read_only_journal_is_read_by_a_dry_run_and_a_report_and_refused_by_a_run(
    emulator: Emulator, tmp_path: Path
) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    journal = folder / "j.sqlite"
    await runner.run_async(_settings(emulator, journal=journal, out=tmp_path / "r.parquet"),
                           _manifest(tmp_path, 3, "first.csv"))
    assert not (folder / "j.sqlite-wal").exists()  # closed cleanly: a read-only reader must do without one
    manifest = _manifest(tmp_path, 5)
    with read_only(folder):
        with pytest.raises(ConfigError, match="is on a read-only file or folder") as refused:
            await runner.run_async(_settings(emulator, journal=journal, out=tmp_path / "r.parquet"), manifest)
        assert "not a usable journal" not in str(refused.value)
        dry = await runner.run_async(_settings(emulator, journal=journal, dry_run=True), manifest)
        seen = read_journal(journal)
    assert dry.planned == {"finished": 3, "new": 2} and dry.exit_code == ExitCode.OK
    assert seen.problem is None and dict(seen.states) == {"uploaded": 3}
    assert _presigns(emulator) == 3

