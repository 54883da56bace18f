"""Two runs on one journal: the second waits up to ``--journal-wait`` for the OS lock on ``<journal>.lock``,
then stops with one sentence naming the holder and exit 75; a dry run reads a snapshot at once while a real
run holds the journal; a dead run's lock file holds nobody."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import write_manifest

from pipeline import runner
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.errors import JournalBusyError
from pipeline.journal import Journal
from pipeline.journal.lock import lock_path, waiting
from pipeline.models import ExitCode, RowResult, Status
from pipeline.python_api import ingest_async, make_settings
from pipeline.samples import make_jpeg

FAST = {"rate": 0.0, "confirm_rate": 0.0, "progress": False}
EMULATOR = pytest.mark.parametrize("emulator", [EmulatorConfig(rate=0, confirm_rate=0)], indirect=True)


def _presigns(emu: Emulator) -> int:
    return int(emu.counters.snapshot(arrivals=False)["presign_calls"])


def _manifest(folder: Path, n: int) -> Path:
    for i in range(n):
        make_jpeg(folder / f"p{i}.jpg", 300, 280, seed=i, quality=70)
    return write_manifest(folder / "m.csv", [{"id": f"k{i}", "path": f"p{i}.jpg"} for i in range(n)])


def _settings(emu: Emulator, journal: Path, **kw: Any) -> Any:
    return make_settings(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
                         journal=journal, **{**FAST, **kw})


def test_a_held_journal_names_its_holder_and_a_dead_holder_holds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path, workspace="ws"):
        facts = json.loads(lock_path(path).read_text())
        assert facts["pid"] == os.getpid() and facts["host"] == socket.gethostname()
        with pytest.raises(JournalBusyError) as busy:
            Journal.open(path, workspace="ws")
    message = str(busy.value)
    assert f"held by run pid {os.getpid()} on host {socket.gethostname()} since {facts['started_at']}" in message
    assert "(python api)" in message and "try again later, or use another --journal" in message
    assert lock_path(path).read_text() == ""  # released: no holder facts left behind
    # A killed run leaves its lock file (facts and all); the kernel's lock died with it.
    lock_path(path).write_text(json.dumps({"pid": 999999, "host": "gone", "started_at": "x", "command": "y"}))
    with Journal.open(path, workspace="ws") as again:
        assert again.counts()["uploaded"] == 0


async def test_waiting_tries_until_the_holder_leaves_or_the_wait_is_over() -> None:
    now = [0.0]
    tries: list[float] = []

    def attempt(busy_tries: int) -> str:
        tries.append(now[0])
        now[0] += 0.25  # the fake clock moves with each try, as the real one would with each sleep
        if len(tries) <= busy_tries:
            raise JournalBusyError("held")
        return "opened"

    assert await waiting(lambda: attempt(3), 5.0, poll=0, clock=lambda: now[0]) == "opened"
    assert tries == [0.0, 0.25, 0.5, 0.75]
    tries.clear()
    now[0] = 0.0
    with pytest.raises(JournalBusyError):
        await waiting(lambda: attempt(99), 2.0, poll=0, clock=lambda: now[0])
    assert len(tries) == 8  # tried until the 2 s were over, then gave up
    tries.clear()
    with pytest.raises(JournalBusyError):
        await waiting(lambda: attempt(99), 0.0, poll=0, clock=lambda: now[0])
    assert len(tries) == 1  # 0: one try, no wait


@EMULATOR
async def test_a_second_run_stops_busy_or_goes_on_once_the_first_ends(emulator: Emulator, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 4)
    journal = tmp_path / "j.sqlite"
    holder = Journal.open(journal, workspace=emulator.workspace)
    try:
        with pytest.raises(JournalBusyError, match="held by run pid"):
            await runner.run_async(_settings(emulator, journal, journal_wait=0), manifest)
        with pytest.raises(JournalBusyError):  # the Python API raises it as is
            await ingest_async(manifest, workspace=emulator.workspace, endpoint=emulator.base_url,
                               credentials=emulator.credentials, journal=journal, journal_wait=0, **FAST)
        assert _presigns(emulator) == 0
        seen: list[int] = []

        def leave() -> None:
            seen.append(_presigns(emulator))
            holder.close()

        asyncio.get_running_loop().call_later(0.3, leave)
        summary = await runner.run_async(_settings(emulator, journal, journal_wait=60), manifest)
    finally:
        holder.close()
    assert seen == [0]  # it waited for the holder before doing anything ...
    assert summary.exit_code == ExitCode.OK and summary.by_status == {"uploaded": 4}  # ... then did it all


@EMULATOR
async def test_a_dry_run_reads_a_snapshot_while_a_real_run_holds_the_journal(emulator: Emulator,
                                                                             tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 5)
    journal = tmp_path / "j.sqlite"
    await runner.run_async(_settings(emulator, journal), write_manifest(
        tmp_path / "first.csv", [{"id": f"k{i}", "path": f"p{i}.jpg"} for i in range(3)]))
    with Journal.open(journal, workspace=emulator.workspace) as held:
        # The real run is mid-write: an open transaction holding SQLite's write lock.
        held._conn.execute("BEGIN IMMEDIATE")
        held._conn.execute("UPDATE rows SET reason = 'mid-write' WHERE key = 'k0'")
        dry = await runner.run_async(_settings(emulator, journal, dry_run=True, journal_wait=0), manifest)
        held._conn.execute("ROLLBACK")
        held.record(RowResult(0, "k9", Status.REJECTED, reason="too_small"))  # the holder still writes
    assert dry.planned == {"finished": 3, "new": 2} and dry.exit_code == ExitCode.OK
    assert _presigns(emulator) == 3


@pytest.mark.parametrize("emulator_thread", [EmulatorConfig(rate=0, confirm_rate=0)], indirect=True)
def test_the_command_exits_75_with_one_sentence(emulator_thread: Emulator, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 1)
    journal = tmp_path / "nightly.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NCLOUD_", "THUMBNAIL_INGEST_"))}
    env.update(NCLOUD_ACCESS_KEY=emulator_thread.credentials.access_key,
               NCLOUD_SECRET_KEY=emulator_thread.credentials.secret_key)
    args = [sys.executable, "-m", "pipeline", "ingest", str(manifest), "--workspace", emulator_thread.workspace,
            "--endpoint", emulator_thread.base_url, "--no-progress", "--journal", str(journal),
            "--journal-wait", "0"]
    with Journal.open(journal, workspace=emulator_thread.workspace):
        console = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        as_json = subprocess.run([*args, "--log-format", "json"], env=env, capture_output=True, text=True,
                                 timeout=60)
    assert console.returncode == ExitCode.BUSY == 75, console.stderr
    lines = console.stderr.strip().splitlines()
    assert len(lines) == 1 and f"held by run pid {os.getpid()}" in lines[0] and "Traceback" not in console.stderr
    assert as_json.returncode == 75
    events = [json.loads(line) for line in as_json.stderr.splitlines() if line.strip()]
    assert [e["event"] for e in events] == ["journal_busy"] and "still going" in str(events[0]["error"])
    assert _presigns(emulator_thread) == 0
