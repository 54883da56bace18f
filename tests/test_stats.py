"""``--stats``: a run without a bar logs a ``progress`` event every N seconds (virtual time here), and
``--metrics-file`` follows the same ticks; the ticking task never keeps a run alive."""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from test_metrics import parse

from pipeline import logs
from pipeline.emulator import Emulator
from pipeline.errors import ConfigError
from pipeline.python_api import make_settings
from pipeline.runner import RunSession
from pipeline.runner.stats import RunStats
from pipeline.samples import make_jpeg

WALL0 = 1_735_689_600.0  # 2025-01-01T00:00:00Z


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    logs.configure_logging("console")


def _stats(clock: Clock, counts: Counter[str], **kw: Any) -> RunStats:
    options: dict[str, Any] = {"run_id": "r1", "total": 100, "counts": counts,
                               "retries": lambda: {"transient": 4, "rate_limited": 0}, "interval": 60.0,
                               "log_progress": True, "metrics_file": None, "clock": clock,
                               "wall": lambda: WALL0 + clock.now}
    return RunStats(**{**options, **kw})


def test_a_tick_says_done_rates_eta_retries_and_counts() -> None:
    clock, counts = Clock(), Counter[str]()
    stats = _stats(clock, counts)
    clock.now, counts["uploaded"] = 60.0, 10
    with capture_logs() as events:
        stats.tick()
        clock.now = 120.0
        counts["uploaded"] += 25
        counts["rejected"] += 5
        stats.tick()
    first, second = (e for e in events if e["event"] == "progress")
    assert first["done"] == 10 and first["total"] == 100 and first["rows_per_s"] == round(10 / 60, 2)
    assert second["done"] == 40 and second["percent"] == 40.0
    assert second["rows_per_s"] == 0.5  # 30 rows over the last 60 s
    assert second["rows_per_s_run"] == round(40 / 120, 2)
    assert second["eta_s"] == 120  # 60 rows left at 0.5 rows/s
    assert second["eta"] == "2025-01-01T00:04:00Z"  # 120 s in, 120 s to go
    assert second["retries"] == 4 and second["retries_by_kind"] == {"transient": 4}
    assert second["by_status"] == {"rejected": 5, "uploaded": 35}


def test_no_eta_while_nothing_moves_and_zero_once_all_are_done() -> None:
    clock, counts = Clock(), Counter[str]()
    stats = _stats(clock, counts)
    clock.now = 60.0
    assert stats.tick().eta_s is None
    clock.now, counts["finished"] = 90.0, 100
    assert stats.tick().eta_s == 0.0


async def test_the_task_ticks_on_its_sleeper_and_stop_ends_it() -> None:
    clock, counts = Clock(), Counter[str]()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # virtual time: each sleep moves the clock, no real wait
        slept.append(seconds)
        clock.now += seconds
        counts["uploaded"] += 3
        await asyncio.sleep(0)

    stats = _stats(clock, counts, interval=15.0, sleep=sleep)
    with capture_logs() as events:
        stats.start()
        for _ in range(7):
            await asyncio.sleep(0)
        stats.stop()
        ticks = len(events)
        for _ in range(3):
            await asyncio.sleep(0)
    assert ticks >= 2 and len(events) == ticks  # nothing after stop
    assert set(slept) == {15.0}
    assert all(e["rows_per_s"] == 0.2 for e in events)  # 3 rows every 15 s


async def test_with_a_bar_drawn_nothing_is_logged_but_the_metrics_file_follows_the_ticks(tmp_path: Path) -> None:
    clock, counts = Clock(), Counter[str]()
    target = tmp_path / "ingest.prom"
    stats = _stats(clock, counts, log_progress=False, metrics_file=target)
    with capture_logs() as events:
        clock.now, counts["uploaded"] = 30.0, 20
        stats.tick()
        tick = parse(target.read_text())
        clock.now, counts["uploaded"] = 50.0, 100
        stats.finish(0)
    assert events == []
    assert tick[("thumbnail_ingest_rows_done", (("status", "uploaded"),))] == 20
    assert ("thumbnail_ingest_exit_code", ()) not in tick
    end = parse(target.read_text())
    assert end[("thumbnail_ingest_exit_code", ())] == 0
    assert end[("thumbnail_ingest_rows_done", (("status", "uploaded"),))] == 100
    assert end[("thumbnail_ingest_last_tick_time_seconds", ())] == WALL0 + 50


def test_a_metrics_file_that_cannot_be_written_is_one_warning_not_a_failure(tmp_path: Path) -> None:
    clock, counts = Clock(), Counter[str]()
    target = tmp_path / "gone" / "ingest.prom"
    stats = _stats(clock, counts, log_progress=False, metrics_file=target)
    with capture_logs() as events:
        stats.tick()
        stats.tick()
        (tmp_path / "gone").mkdir()
        stats.finish(1)
    assert [e["event"] for e in events] == ["metrics_not_written"]
    assert parse(target.read_text())[("thumbnail_ingest_exit_code", ())] == 1


def _manifest(folder: Path, n: int) -> Path:
    lines = ["id,path"]
    for i in range(n):
        make_jpeg(folder / f"p{i}.jpg", 300, 300, seed=i, quality=70)
        lines.append(f"k{i},p{i}.jpg")
    path = folder / "manifest.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_a_run_without_a_bar_logs_progress_and_writes_the_metrics_file(
        emulator: Emulator, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 8)
    metrics = tmp_path / "ingest.prom"
    settings = make_settings(workspace=emulator.workspace, endpoint=emulator.base_url,
                             credentials=emulator.credentials, rate=0.0, confirm_rate=0.0, progress=False,
                             journal=tmp_path / "j.sqlite", stats=30.0, metrics_file=metrics)
    ticks = 0

    async def sleep(seconds: float) -> None:
        nonlocal ticks
        assert seconds == 30.0
        ticks += 1
        if ticks > 3:
            await asyncio.Future()  # never wakes: the run must end without waiting for its stats task
        await asyncio.sleep(0)

    logs.configure_logging("json", stream=io.StringIO())
    with capture_logs() as events:
        summary = await RunSession(settings, manifest, sleep=sleep).run()
    assert summary.exit_code == 0
    progress = [e for e in events if e["event"] == "progress"]
    assert len(progress) == 3 and all(e["total"] == 8 for e in progress)
    end = parse(metrics.read_text())
    assert end[("thumbnail_ingest_exit_code", ())] == 0
    assert end[("thumbnail_ingest_rows_done", (("status", "uploaded"),))] == 8
    assert end[("thumbnail_ingest_rows", ())] == 8


def test_stats_and_metrics_file_are_options_checked_at_the_edge(tmp_path: Path) -> None:
    settings = make_settings(workspace="w", dry_run=True, stats=5, metrics_file=str(tmp_path / "m.prom"))
    assert settings.stats == 5.0 and settings.metrics_file == tmp_path / "m.prom"
    assert make_settings(workspace="w", dry_run=True).stats == 60.0
    with pytest.raises(ConfigError, match="stats="):
        make_settings(workspace="w", dry_run=True, stats=-1)


async def test_a_metrics_file_in_a_missing_folder_stops_the_run_before_it_starts(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 1)
    settings = make_settings(workspace="w", dry_run=True, progress=False, journal=tmp_path / "j.sqlite",
                             metrics_file=tmp_path / "nope" / "m.prom")
    with pytest.raises(ConfigError, match="does not exist"):
        await RunSession(settings, manifest).run()
