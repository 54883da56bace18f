"""SIGKILL a real CLI run mid-way, re-run, and check from the emulator and the journal that nothing was
lost or uploaded twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import photo_manifest

from pipeline.emulator import Emulator, EmulatorConfig, Faults

CONCURRENCY = 8


def _cli(emu: Emulator, manifest: Path, tmp: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline", "ingest", str(manifest), "--workspace", emu.workspace,
            "--endpoint", emu.base_url, "--out", str(tmp / "results.parquet"), "--journal", str(tmp / "j.sqlite"),
            "--no-progress", "--log-format", "json", "--rate", "0", "--confirm-rate", "0",
            "--concurrency", str(CONCURRENCY)]


def _env(emu: Emulator) -> dict[str, str]:
    return {**os.environ, "NCLOUD_ACCESS_KEY": emu.credentials.access_key,
            "NCLOUD_SECRET_KEY": emu.credentials.secret_key}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return photo_manifest(tmp_path, 120, manifest=tmp_path / "manifest.csv")


@pytest.mark.slow  # a real kill -9 of a child run: make reliability
@pytest.mark.parametrize("emulator_thread", [EmulatorConfig(faults=Faults(latency=0.02))], indirect=True)
def test_sigkill_then_rerun_finishes_without_double_upload(
    emulator_thread: Emulator, photos: Path, tmp_path: Path
) -> None:
    emu = emulator_thread
    cmd, env = _cli(emu, photos, tmp_path), _env(emu)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while emu.counters.snapshot(arrivals=False)["puts_ok"] < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    puts_at_kill = emu.counters.snapshot(arrivals=False)["put_calls"]
    assert 40 <= puts_at_kill < 120, "the kill must land mid-run"

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]

    rows = pq.read_table(tmp_path / "results.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["uploaded"] * 120
    keys = [r["thumbnail_key"] for r in rows]
    assert len(set(keys)) == 120 and all(k in emu.objects for k in keys)
    counters = emu.counters.snapshot(arrivals=False)
    assert set(counters["puts_per_key"].values()) == {1}          # no URL used twice
    assert counters["put_calls"] <= 120 + CONCURRENCY              # extra PUTs bounded by rows in flight
    with closing(sqlite3.connect(tmp_path / "j.sqlite")) as db:
        per_row = db.execute("select count(distinct thumbnail_key) from rows where status='uploaded' "
                             "group by key having count(distinct thumbnail_key) > 1").fetchall()
        orphans = {k for (k,) in db.execute("select thumbnail_key from orphans")}
    assert per_row == []
    # Every object the server holds beyond the committed keys is accounted for as an orphan.
    assert set(emu.objects) - set(keys) <= orphans
