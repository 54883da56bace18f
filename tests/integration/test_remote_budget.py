"""Memory from remote sources is bounded by the run's byte budgets (issue "Hardening, third pass"): 20 MB
objects from S3 (moto) through whole runs, the budgets' own high-water marks (logged as ``byte_budget``)
never above ``--fetch-max-bytes-in-flight`` (source bytes from their fetch until the image stage released them)
and ``--prepared-max-bytes`` (prepared images until their upload ended); a budget smaller than one object
lets it through alone, never deadlocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import MakeEmulator
from s3_fixtures import MotoS3, moto_s3
from structlog.testing import capture_logs

from pipeline import runner
from pipeline.emulator import EmulatorConfig
from pipeline.python_api import make_settings
from pipeline.samples import make_jpeg

MB = 1 << 20
FAST = {"rate": 0.0, "confirm_rate": 0.0, "confirm": False, "progress": False}


def padded_jpeg(size: int, seed: int) -> bytes:
    """A 2000x1500 JPEG of ``size`` bytes: padded with comment segments, which the image stage strips (cheap
    to prepare, ~1 MB to upload), so the run's time goes to moving 20 MB objects, the thing under test."""
    base = make_jpeg(None, 2000, 1500, seed=seed, quality=92)
    segment = b"\xff\xfe" + (0xFFFF).to_bytes(2, "big") + bytes(0xFFFF - 2)
    return base[:2] + segment * ((size - len(base)) // len(segment)) + base[2:]


@pytest.fixture
def s3() -> MotoS3:
    with moto_s3() as server:
        yield server  # type: ignore[misc]


async def _run(s3: MotoS3, make_emulator: MakeEmulator, tmp_path: Path, rows: int,
               **budgets: Any) -> tuple[Any, dict[str, dict[str, Any]]]:
    emu = await make_emulator(EmulatorConfig(storage="hash", rate=0, confirm_rate=0))
    manifest = tmp_path / f"m{rows}.csv"
    manifest.write_text("path\n" + "".join(f"s3://{s3.bucket}/big/{n}.jpg\n" for n in range(rows)))
    settings = make_settings(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
                             s3_endpoint=s3.endpoint, out=tmp_path / f"r{rows}.parquet",
                             journal=tmp_path / f"j{rows}.sqlite", **FAST, **budgets)
    with capture_logs() as events:
        summary = await runner.run_async(settings, manifest)
    peaks = {e["budget"]: e for e in events if e["event"] == "byte_budget"}
    return summary, peaks


@pytest.mark.slow
async def test_twenty_mb_objects_stay_within_both_budgets(
    s3: MotoS3, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    bodies = [padded_jpeg(20 * MB, seed) for seed in range(4)]
    for n in range(40):
        s3.seed([f"big/{n}.jpg"], bodies[n % 4])
    summary, peaks = await _run(s3, make_emulator, tmp_path, 40, fetch_max_bytes_in_flight=64 * MB,
                                prepared_max_bytes=3 * MB, fetch_concurrency=32)
    assert summary.exit_code == 0 and summary.by_status == {"uploaded": 40}
    source, prepared = peaks["source"], peaks["prepared"]
    assert source["capacity"] == 64 * MB and 2 * len(bodies[0]) <= source["peak"] <= 64 * MB
    assert prepared["capacity"] == 3 * MB and 0 < prepared["peak"] <= 3 * MB

    # Budgets smaller than one object and one prepared image: each goes through alone, to the end.
    summary, peaks = await _run(s3, make_emulator, tmp_path, 6, fetch_max_bytes_in_flight=10 * MB,
                                prepared_max_bytes=100_000)
    assert summary.exit_code == 0 and summary.by_status == {"uploaded": 6}
    assert peaks["source"]["peak"] == 10 * MB and peaks["prepared"]["peak"] == 100_000
