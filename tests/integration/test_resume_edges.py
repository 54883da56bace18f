"""Issue 10's list, one test each: what a new user ran into, reproduced, and now right."""

from __future__ import annotations

import asyncio
import csv
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from helpers import MakeEmulator
from structlog.testing import capture_logs

from pipeline import ingest, ingest_async, runner
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.errors import AuthenticationError, ConfigError, ManifestError
from pipeline.journal import Journal
from pipeline.journal.location import default_journal
from pipeline.models import ExitCode
from pipeline.python_api import make_settings
from pipeline.runner.spill import Spill
from pipeline.samples import make_jpeg

FAST = {"rate": 0.0, "confirm_rate": 0.0, "confirm": False, "progress": False}


def _manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
async def emu(make_emulator: MakeEmulator) -> Emulator:
    return await make_emulator(EmulatorConfig(storage="hash", rate=0, confirm_rate=0))


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """12 photos and a manifest with ids beside them."""
    for i in range(12):
        make_jpeg(tmp_path / f"p{i:02d}.jpg", 300, 280, seed=i, quality=70)
    return _manifest(tmp_path / "people.csv", [{"id": f"r{i}", "path": f"p{i:02d}.jpg"} for i in range(12)])


def _settings(emu: Emulator, **kw: Any) -> Any:
    return make_settings(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
                         **{**FAST, **kw})


def _puts(emu: Emulator) -> int:
    return int(emu.counters.snapshot(arrivals=False)["put_calls"])


async def test_changing_out_never_reuploads(emu: Emulator, archive: Path, tmp_path: Path) -> None:
    await runner.run_async(_settings(emu), archive)
    assert _puts(emu) == 12
    again = await runner.run_async(_settings(emu, out=tmp_path / "other" / "results.csv"), archive)
    assert _puts(emu) == 12
    assert again.by_status == {"uploaded": 12} and again.exit_code == ExitCode.OK
    assert again.journal_path == default_journal(emu.base_url, emu.workspace)


async def test_fixable_rejections_are_checked_again(emu: Emulator, archive: Path, tmp_path: Path) -> None:
    (tmp_path / "p03.jpg").rename(tmp_path / "away.jpg")
    first = await runner.run_async(_settings(emu), archive)
    assert first.by_reason == {"not_found": 1} and first.exit_code == ExitCode.OK
    (tmp_path / "away.jpg").rename(tmp_path / "p03.jpg")  # the user copies the missing file into place
    second = await runner.run_async(_settings(emu), archive)
    assert second.by_status == {"uploaded": 12} and _puts(emu) == 12
    assert second.planned == {"recheck": 1, "finished": 11}


async def test_every_path_missing_stops_with_the_folder_named(emu: Emulator, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "m.csv", [{"path": f"photos/x{i}.jpg"} for i in range(5)])
    summary = await runner.run_async(_settings(emu), manifest)
    assert summary.exit_code == ExitCode.USAGE
    assert summary.error is not None and str(tmp_path) in summary.error and "--root" in summary.error
    assert _puts(emu) == 0
    with pytest.raises(ManifestError, match="None of the 5 photo paths"):
        await ingest_async(manifest, **{"workspace": emu.workspace, "endpoint": emu.base_url,
                                        "credentials": emu.credentials, **FAST})


async def test_dry_run_never_replaces_real_results(emu: Emulator, archive: Path, tmp_path: Path) -> None:
    real = await runner.run_async(_settings(emu), archive)
    before = (tmp_path / "people.results.parquet").read_bytes()
    make_jpeg(tmp_path / "new.jpg", 300, 300, seed=99)
    with archive.open("a") as fh:
        fh.write("r99,new.jpg\n")
    dry = await runner.run_async(_settings(emu, dry_run=True), archive)
    assert dry.results_path == tmp_path / "people.dryrun.parquet"
    assert (tmp_path / "people.results.parquet").read_bytes() == before
    assert dry.planned == {"new": 1, "finished": 12} and _puts(emu) == 12
    rows = pq.read_table(dry.results_path).to_pylist()
    assert [r["status"] for r in rows] == ["uploaded"] * 12 + ["skipped"]
    with pytest.raises(ConfigError, match="holds the keys of a real run"):
        await runner.run_async(_settings(emu, dry_run=True, out=real.results_path), archive)
    with Journal.open(default_journal(emu.base_url, emu.workspace), workspace=emu.workspace) as j:
        assert j.lookup(["r99"]) == {}  # the dry run changed nothing in the real journal


async def test_a_manifest_rewritten_during_the_run_cannot_mismatch_keys(
    emu: Emulator, archive: Path, tmp_path: Path
) -> None:
    with archive.open(newline="") as fh:
        rows = list(csv.DictReader(fh))

    def rewrite(_control: object) -> None:  # after the start-up checks, before the rows are read
        _manifest(archive, [*reversed(rows), {"id": "late", "path": "p00.jpg"}])

    summary = await runner.run_async(_settings(emu), archive, on_control=rewrite)
    results = pq.read_table(summary.results_path).to_pylist()
    assert [r["id"] for r in results] == [r["id"] for r in reversed(rows)] + ["late"]
    for r in results:
        assert r["id"] in emu.objects[r["thumbnail_key"]].file_name


async def test_unwritable_results_folder_is_refused_before_any_upload(
    emu: Emulator, archive: Path, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ConfigError, match="cannot be written"):
        await runner.run_async(_settings(emu, out=tmp_path / "a-file" / "r.parquet"), archive)
    with pytest.raises(ConfigError, match=r"manifest and the results \(--out\) are the same file"):
        await runner.run_async(_settings(emu, out=tmp_path / "people.csv"), archive)
    assert _puts(emu) == 0


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 200 KiB tmpfs: a disk that fills up (needs root, as CI has; skipped elsewhere)."""
    where = tmp_path / "tiny"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


async def test_a_journal_disk_filling_up_stops_cleanly(emu: Emulator, tmp_path: Path, tiny_disk: Path) -> None:
    rows = [{"id": "x" * 300 + str(i), "path": f"missing/{'y' * 200}{i}.jpg"} for i in range(3000)]
    manifest = _manifest(tmp_path / "m.csv", rows)
    settings = _settings(emu, journal=tiny_disk / "j.sqlite", out=tmp_path / "r.parquet")
    summary = await asyncio.wait_for(runner.run_async(settings, manifest), 120)  # bounded: never a hang
    assert summary.exit_code == ExitCode.FAILED
    assert summary.error is not None and "could not be written" in summary.error and "j.sqlite" in summary.error
    assert pq.read_table(summary.results_path).num_rows == 3000  # results still written, from what was kept


async def test_a_results_disk_without_room_is_refused_before_any_upload(
    emu: Emulator, tmp_path: Path, tiny_disk: Path
) -> None:
    rows = [{"id": f"r{i}", "path": f"p{i}.jpg"} for i in range(1000)]
    manifest = _manifest(tmp_path / "m.csv", rows)
    with pytest.raises(ConfigError, match="MiB free"):
        await runner.run_async(_settings(emu, out=tiny_disk / "r.parquet"), manifest)
    assert _puts(emu) == 0


async def test_stale_temp_files_of_killed_runs_are_removed(emu: Emulator, archive: Path, tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".people.results.parquet.{dead.stdout.strip()}.0badcafe.tmp"
    stale.write_bytes(b"x" * 1000)
    mine = tmp_path / f".people.results.parquet.{os.getppid()}.0badcafe.tmp"  # a live process's: kept
    mine.write_bytes(b"x")
    await runner.run_async(_settings(emu), archive)
    assert not stale.exists() and mine.exists()
    assert [p.name for p in tmp_path.glob(".people*.tmp")] == [mine.name]


async def test_a_second_signal_during_the_results_write_keeps_the_previous_file(
    emu: Emulator, archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await runner.run_async(_settings(emu), archive)
    before = (tmp_path / "people.results.parquet").read_bytes()
    controls: list[Any] = []
    real = Spill.chunks

    def interrupted(self: Spill, journal: Any, unfinished: Any, counts: Any,
                    abort: threading.Event | None = None) -> Iterator[Any]:
        assert abort is not None
        for n, chunk in enumerate(real(self, journal, unfinished, counts, abort)):
            if n == 0:  # two Ctrl-C while the file is being written, as a user would press them
                controls[0]._loop.call_soon_threadsafe(controls[0].on_signal)
                controls[0]._loop.call_soon_threadsafe(controls[0].on_signal)
                assert abort.wait(30)
            yield chunk

    monkeypatch.setattr(Spill, "chunks", interrupted)
    summary = await runner.run_async(_settings(emu, batch_size=3), archive, on_control=controls.append)
    assert summary.exit_code == ExitCode.INTERRUPTED
    assert (tmp_path / "people.results.parquet").read_bytes() == before
    assert list(tmp_path.glob(".*.tmp")) == []


async def test_one_signal_during_the_results_write_finishes_it(
    emu: Emulator, archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    controls: list[Any] = []
    real = Spill.chunks

    def signalled(self: Spill, *args: Any) -> Iterator[Any]:
        for n, chunk in enumerate(real(self, *args)):
            if n == 0:
                controls[0]._loop.call_soon_threadsafe(controls[0].on_signal)
            yield chunk

    monkeypatch.setattr(Spill, "chunks", signalled)
    summary = await runner.run_async(_settings(emu, batch_size=3), archive, on_control=controls.append)
    assert summary.exit_code == ExitCode.INTERRUPTED  # said so ...
    rows = pq.read_table(tmp_path / "people.results.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["uploaded"] * 12  # ... and the results are whole


def test_notebook_rerun_resumes_from_the_state_folder(emulator_thread: Emulator, archive: Path) -> None:
    import pandas as pd

    frame = pd.read_csv(archive)
    frame["path"] = [str(archive.parent / p) for p in frame["path"]]
    opts = {"workspace": emulator_thread.workspace, "endpoint": emulator_thread.base_url,
            "credentials": emulator_thread.credentials, **FAST}
    first = ingest(frame, **opts)
    second = ingest(frame, **opts)
    assert _puts(emulator_thread) == 12
    assert first.journal_path == second.journal_path
    assert first.journal_path is not None and "thumbnail-ingest" in str(first.journal_path)
    assert second.planned == {"finished": 12} and second.results is not None
    assert second.results.column("thumbnail_key").to_pylist() == first.results.column("thumbnail_key").to_pylist()


def test_a_wrong_secret_raises_the_documented_subclass_once(emulator_thread: Emulator, archive: Path) -> None:
    from pipeline.config import Credentials

    opts = {"workspace": emulator_thread.workspace, "endpoint": emulator_thread.base_url,
            "credentials": Credentials(emulator_thread.credentials.access_key, "wrong-secret"), **FAST}
    with capture_logs() as events, pytest.raises(AuthenticationError) as info:
        ingest(archive, **opts)
    assert info.value.status == 401 and info.value.code == "200"
    assert [e["event"] for e in events].count("fatal_api_error") == 1
    summary = info.value.summary  # type: ignore[attr-defined]
    assert summary.by_reason == {"not_reached": 12}
    rows = pq.read_table(summary.results_path).to_pylist()
    assert {r["reason"] for r in rows} == {"not_reached"}


def test_a_kernel_interrupt_stops_like_ctrl_c_and_releases_the_journal(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    """As in Jupyter: the loop runs in this thread, ``ingest`` runs the job on a helper thread, and the kernel's
    interrupt arrives as KeyboardInterrupt in this thread while it waits."""
    from pipeline.emulator import emulator_in_thread
    from pipeline.emulator.settings import Faults

    for i in range(40):
        make_jpeg(tmp_path / f"q{i}.jpg", 300, 280, seed=i, quality=70)
    manifest = _manifest(tmp_path / "m.csv", [{"id": f"q{i}", "path": f"q{i}.jpg"} for i in range(40)])
    config = EmulatorConfig(storage="hash", rate=0, confirm_rate=0, faults=Faults(latency=0.05))
    with emulator_in_thread(config) as emu:
        opts = {"workspace": emu.workspace, "endpoint": emu.base_url, "credentials": emu.credentials,
                **FAST, "concurrency": 2}

        async def cell() -> Any:
            main = threading.main_thread().ident
            assert main is not None

            def interrupt_after_first_put() -> None:
                for _ in range(2000):  # bounded wait for a condition, not a sleep standing in for one
                    if _puts(emu) >= 1:
                        break
                    threading.Event().wait(0.005)
                import signal

                signal.pthread_kill(main, signal.SIGINT)

            threading.Thread(target=interrupt_after_first_put, daemon=True).start()
            return ingest(manifest, **opts)

        # Jupyter runs its loop without asyncio.Runner's own SIGINT handler: the interrupt arrives as
        # KeyboardInterrupt in this thread, wherever it is.
        loop = asyncio.new_event_loop()
        try:
            summary = loop.run_until_complete(cell())
        finally:
            loop.close()
        assert summary.interrupted and summary.exit_code == ExitCode.INTERRUPTED
        done = summary.by_status.get("uploaded", 0)
        assert 1 <= done < 40
        journal = default_journal(emu.base_url, emu.workspace)
        with Journal.open(journal, workspace=emu.workspace):
            pass  # the lock was released
        puts = _puts(emu)
        again = ingest(manifest, **{**opts, "concurrency": 16})
        assert again.by_status == {"uploaded": 40}
        assert _puts(emu) == puts + 40 - done
        with closing(sqlite3.connect(journal)) as db:
            assert db.execute("select count(*) from rows where status = 'uploaded'").fetchone() == (40,)


async def test_a_dead_endpoint_is_fatal_before_any_row(archive: Path, tmp_path: Path) -> None:
    """Connection refused before any call succeeded: one sentence naming the host, exit 3, no row by row."""
    import socket

    from pipeline.config import Credentials

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = make_settings(workspace="ws", endpoint=f"http://127.0.0.1:{port}",
                             credentials=Credentials("a", "b" * 10), **FAST)
    with capture_logs() as events:
        summary = await asyncio.wait_for(runner.run_async(settings, archive), 60)
    assert summary.exit_code == ExitCode.FATAL and summary.fatal_type == "EndpointUnreachableError"
    assert summary.error is not None and f"127.0.0.1:{port}" in summary.error
    assert summary.by_reason == {"not_reached": 12}
    assert [e["event"] for e in events].count("fatal_api_error") == 1
    assert not [e for e in events if e["event"] in ("retrying", "row_failed")]


async def test_a_manifest_damaged_during_the_run_stops_it_with_one_sentence(emu: Emulator, tmp_path: Path) -> None:
    for i in range(6):
        make_jpeg(tmp_path / f"n{i}.jpg", 300, 280, seed=i, quality=70)
    rows = [{"id": str(i), "path": f"n{i}.jpg"} for i in range(6)]  # integer ids: an int64 column
    manifest = _manifest(tmp_path / "m.csv", rows)

    def damage(_control: object) -> None:
        _manifest(manifest, [{"id": f"x{i}", "path": f"n{i}.jpg"} for i in range(6)])

    summary = await runner.run_async(_settings(emu), manifest, on_control=damage)
    assert summary.exit_code == ExitCode.USAGE
    assert summary.error is not None and "m.csv" in summary.error
    assert summary.results_path is not None and summary.results_path.exists()
