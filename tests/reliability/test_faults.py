"""A run through every transient fault at once: 5xx answers, dropped connections, URLs that expire early, a
storm of 429s and added latency. Every row must end ``uploaded`` with exactly one committed key, no URL may
be PUT twice, and the retries the run reports must match what the emulator saw."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from relcommon import cli_cmd, cli_env, events, journal_rows, orphans, photo_manifest, results, sha256, wait_for

from pipeline.emulator import EmulatorConfig, Faults, emulator_in_thread

CONCURRENCY = 16


def _fault_run(tmp_path: Path, rows: int, storm: float, *, latency: float = 0.2) -> None:
    manifest = photo_manifest(tmp_path, rows)
    faults = Faults(error_rate=0.10, drop_rate=0.05, early_expiry_rate=0.05, latency=latency, seed=7)
    with emulator_in_thread(EmulatorConfig(rate=0, confirm_rate=0, faults=faults)) as emu:
        cmd = cli_cmd(emu, manifest, tmp_path, "--concurrency", str(CONCURRENCY))
        env = cli_env(emu.credentials.access_key, emu.credentials.secret_key)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The storm starts mid-run, once uploads are flowing, so it hits presign and status calls in flight.
        assert wait_for(lambda: emu.counters.snapshot(arrivals=False)["puts_ok"] >= rows // 5, 120)
        emu.faults.storm(storm)
        _out, err = proc.communicate(timeout=600)
        counters = emu.counters.snapshot(arrivals=False)
        objects = dict(emu.objects)

    assert "Traceback" not in err
    table = results(tmp_path / "results.parquet")
    failed = [(r["id"], r["reason"], r["attempts"], r["detail"]) for r in table if r["status"] != "uploaded"]
    assert proc.returncode == 0 and not failed, (failed, err[-1500:])
    log = events(err)
    finished = [e for e in log if e["event"] == "run_finished"]
    assert len(finished) == 1
    summary = finished[0]

    # Every row uploaded, each with its own key, each key really stored with the source's exact bytes.
    assert [r["status"] for r in table] == ["uploaded"] * rows
    keys = [r["thumbnail_key"] for r in table]
    assert len(set(keys)) == rows
    for r in table:
        obj = objects[r["thumbnail_key"]]
        assert obj.sha256 == r["source_sha256"] == sha256((tmp_path / r["path"]).read_bytes())

    journal = {j["key"]: j for j in journal_rows(tmp_path / "j.sqlite")}
    assert [journal[r["id"]]["status"] for r in table] == ["uploaded"] * rows and len(journal) == rows
    assert [journal[r["id"]]["thumbnail_key"] for r in table] == keys
    # Anything else the server holds is accounted for as an orphan in the journal.
    assert set(objects) - set(keys) <= orphans(tmp_path / "j.sqlite")

    # No presigned URL was PUT twice; every failed PUT was followed by a fresh presign.
    assert set(counters["puts_per_key"].values()) == {1}

    # The faults really happened...
    faults_seen = counters["faults"]
    assert faults_seen.get("errors", 0) > 0 and faults_seen.get("dropped", 0) > 0
    assert faults_seen.get("early_expired", 0) > 0 and counters["responses_429"] > 0
    # ...and the retries the run reports are exactly the ones the emulator provoked.
    retries = summary["retries"]
    assert retries["rate_limited"] == counters["responses_429"] > 0
    assert retries["transient"] > 0 and retries["put_failed"] > 0 and retries["expired"] > 0
    assert retries["transient"] + retries["put_failed"] == faults_seen["errors"] + faults_seen["dropped"]
    assert retries["expired"] + retries["put_failed"] == counters["put_calls"] - counters["puts_ok"]
    assert retries.get("file_not_exist", 0) == 0
    assert counters["puts_ok"] == rows + len(set(objects) - set(keys))
    assert summary["by_status"] == {"uploaded": rows} and summary["exit_code"] == 0


@pytest.mark.slow  # real time (seconds of it): the reliability tier
def test_faults_ci(tmp_path: Path) -> None:
    """~150 rows, 10 % 5xx, 5 % drops, 5 % early expiry, a 2 s storm of 429s, 200 ms latency."""
    _fault_run(tmp_path, 150, storm=2.0)


@pytest.mark.slow
def test_faults_full(tmp_path: Path) -> None:
    """1,000 rows with the full figures: the same faults and a 5 s storm."""
    _fault_run(tmp_path, 1000, storm=5.0)
