"""Day two through the real CLI: a nightly job writing a dated manifest each night with ``--attach`` uploads and
attaches only what is new (the default journal follows the workspace), and another archive reusing the ids is
stopped before any upload with one sentence (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import write_manifest

from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.samples import make_jpeg


def _night(folder: Path, day: str, n: int, *, seed: int = 0, who: str = "Person") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = folder / f"p{i:02d}.jpg"
        if not path.exists():
            make_jpeg(path, 300, 300, seed=seed + i, quality=70)
        rows.append({"id": f"r{i:02d}", "path": path.name, "person": f"{who} {i % 3}"})
    return write_manifest(folder / f"photos-{day}.csv", rows)


def _ingest(emu: Emulator, manifest: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NCLOUD_ACCESS_KEY": emu.credentials.access_key,
           "NCLOUD_SECRET_KEY": emu.credentials.secret_key}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "ingest", str(manifest), "--workspace", emu.workspace, "--endpoint",
         emu.base_url, "--attach", "--rate", "0", "--confirm-rate", "0", "--attach-rate", "0", "--no-progress",
         "--log-format", "json"], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("emulator_thread", [EmulatorConfig(rate=0, confirm_rate=0, persons_rate=0)],
                         indirect=True)
def test_dated_nightly_manifests_then_another_archive(emulator_thread: Emulator, tmp_path: Path) -> None:
    emu = emulator_thread
    first = _ingest(emu, _night(tmp_path / "a", "2026-12-01", 6))
    assert first.returncode == 0, first.stderr[-2000:]
    second = _ingest(emu, _night(tmp_path / "a", "2026-12-02", 9))
    assert second.returncode == 0, second.stderr[-2000:]
    snap = emu.counters.snapshot(arrivals=False)
    assert snap["presign_calls"] == 9  # 6 the first night, the 3 new rows the second
    results = pq.read_table(tmp_path / "a" / "photos-2026-12-02.results.parquet").to_pylist()
    assert sorted(r["this_run"] for r in results) == ["attached"] * 3 + ["unchanged"] * 6
    assert sorted(len(p.thumbnails) for p in emu.persons.values()) == [3, 3, 3]
    other = _ingest(emu, _night(tmp_path / "b", "2026-12-02", 9, seed=100, who="Other"))
    assert other.returncode == 2
    lines = [line for line in other.stderr.splitlines() if "reuse ids" in line]
    assert len(lines) == 1 and "--id-prefix" in lines[0]
    assert emu.counters.snapshot(arrivals=False)["presign_calls"] == 9
