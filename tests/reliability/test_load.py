"""Load at the cap: a long run at --rate 50 (confirm off) against an emulator enforcing 50/s. The emulator's
own sliding-window count must never exceed the cap, no 429 may be provoked, the run must go at the cap (not
far under it), and the child's RSS, sampled every second from /proc, must stay flat."""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

import pytest
from relcommon import RssSampler, cli_cmd, cli_env, events, photo_manifest, results

from pipeline.emulator import EmulatorConfig, emulator_in_thread

CAP = 50


def _load_run(tmp_path: Path, rows: int, *, rss_growth_mib: float) -> dict[str, float]:
    manifest = photo_manifest(tmp_path, rows, distinct=8)  # 8 files, many rows each: preparing is cheap
    with emulator_in_thread(EmulatorConfig(rate=CAP, confirm_rate=1000)) as emu:
        cmd = cli_cmd(emu, manifest, tmp_path, "--rate", str(CAP), "--no-confirm", "--concurrency", "16",
                      fast=False)
        env = cli_env(emu.credentials.access_key, emu.credentials.secret_key)
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        with RssSampler(proc.pid, every=1.0) as rss:
            _, err = proc.communicate(timeout=rows / CAP * 2 + 120)
        seconds = time.monotonic() - started
        counters = emu.counters.snapshot(arrivals=True)
        stored = len(emu.objects)

    assert proc.returncode == 0, err[-3000:]
    finished = [e for e in events(err) if e["event"] == "run_finished"][0]
    assert finished["by_status"] == {"uploaded": rows}
    assert [r["status"] for r in results(tmp_path / "results.parquet")] == ["uploaded"] * rows
    assert stored == rows and counters["puts_ok"] == rows

    # The cap, from the emulator's side: never more than 50 in any sliding 1 s window, first second included.
    assert counters["max_presign_per_1s"] <= CAP, counters["max_presign_per_1s"]
    assert counters["responses_429"] == 0 and finished["retries"]["rate_limited"] == 0
    assert counters["presign_calls"] == rows and counters["status_calls"] == 0
    arrivals = counters["presign_arrivals"]
    span = arrivals[-1] - arrivals[0]
    # ...and at the cap, not far under it: rows-1 gaps of 1/50 s at best.
    assert span >= (rows - CAP) / CAP * 0.999
    achieved = (rows - 1) / span
    assert achieved >= CAP * 0.85, f"only {achieved:.1f} presign/s"

    # Flat memory: the last quarter's median within rss_growth_mib of the first quarter's (after warm-up).
    samples = rss.samples[3:]  # the first seconds: imports, pools, first batches
    assert len(samples) >= 8, rss.samples
    quarter = max(2, len(samples) // 4)
    first, last = statistics.median(samples[:quarter]), statistics.median(samples[-quarter:])
    growth = (last - first) / 1024
    assert growth <= rss_growth_mib, f"RSS grew {growth:.1f} MiB: {rss.samples}"
    return {"seconds": seconds, "presign_per_s": achieved, "max_per_1s": counters["max_presign_per_1s"],
            "rss_first_mib": first / 1024, "rss_last_mib": last / 1024, "rss_peak_mib": max(rss.samples) / 1024}


def test_load_at_cap_ci(tmp_path: Path) -> None:
    """1,000 rows at 50/s: ~20 s."""
    print(_load_run(tmp_path, 1000, rss_growth_mib=30))


@pytest.mark.slow
def test_load_at_cap_20000(tmp_path: Path) -> None:
    """20,000 rows at 50/s: ~400 s."""
    print(_load_run(tmp_path, 20_000, rss_growth_mib=30))
