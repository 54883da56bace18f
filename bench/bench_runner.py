"""End-to-end benchmarks of the ingest run (issue 5).

- rows/s on already-acceptable 1-3 MP JPEGs at the default 50/s cap with ``--no-confirm`` (goal >= 49.5/s
  measured from the emulator's presign arrivals, >= 3,000 rows), and with confirm on (goal >= 99 % of 1000/min);
- a 1,000,000-row manifest of missing files through the real CLI: rows/s (goal >= 10,000) and peak RSS
  (goal <= 300 MB; every path is missing, so the run ends with exit 2 naming the folder);
- re-running a finished 100,000-row journal: seconds (goal <= 10) and API calls (goal 0); then with 1 % of the
  rows' photos changed: seconds beyond their uploads at the cap (goal <= 15);
- the nightly no-op: a re-run of a finished 100,000- and 1,000,000-row journal in microseconds a row, from the
  run's own duration (``run_finished``'s ``duration_s``, the interpreter's start-up left out; goal <= 15 us a row),
  with the whole command's wall time beside it.

``BENCH_QUICK=1`` shrinks every size by 10x for a smoke run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from emulator_tools import arrival_rate, emulator_process, fetch_state

from bench.niced import ingest_niced
from pipeline.emulator import (
    DEFAULT_WORKSPACE,
    Emulator,
    EmulatorConfig,
    emulator_in_thread,
)
from pipeline.samples import make_jpeg

QUICK = os.environ.get("BENCH_QUICK") == "1"
SCALE = 10 if QUICK else 1


def _photos(directory: Path, rows: int, distinct: int = 120) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    sizes = [(1600, 1200), (2000, 1500), (1200, 1000), (1280, 1024)]
    for i in range(distinct):
        path = directory / f"p{i:03d}.jpg"
        if not path.exists():
            w, h = sizes[i % len(sizes)]
            make_jpeg(path, w, h, seed=i)
    manifest = directory / f"manifest_{rows}.csv"
    with manifest.open("w") as f:
        f.write("id,path\n")
        for i in range(rows):
            f.write(f"row{i},p{i % distinct:03d}.jpg\n")
    return manifest


def end_to_end(directory: Path, rows: int, *, confirm: bool, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """One run of the real CLI (``niced``: at a lower priority than the emulator; ``extra`` arguments added)
    against the emulator in its own process, as the real service is: a thread in this process would delay its
    arrival stamps behind the GIL and blur the sliding-window count."""
    manifest = _photos(directory, rows)
    out = directory / f"results_{rows}_{confirm}.parquet"
    journal = directory / f"journal_{rows}_{confirm}.sqlite"
    for p in (out, journal):
        p.unlink(missing_ok=True)
    with emulator_process("--rate", "50", "--storage", "hash", no_gc=True) as base:
        run = ingest_niced(manifest, base, "--out", str(out), "--journal", str(journal),
                           *([] if confirm else ["--no-confirm"]), *extra)
        wall = run.seconds
        snap = fetch_state(base)
    rate = arrival_rate(snap["presign_arrivals"])
    cap = 1000 / 60 if confirm else 50.0
    return {"rows": rows, "uploaded": run.finished["by_status"].get("uploaded", 0),
            "presign_calls": snap["presign_calls"],
            "status_calls": snap["status_calls"], "server_rows_per_s": round(rate, 2), "cap_per_s": round(cap, 2),
            "of_cap": round(rate / cap, 4), "wall_s": round(wall, 1), "responses_429": snap["responses_429"],
            "max_presign_per_1s": snap["max_presign_per_1s"], "max_status_per_60s": snap["max_status_per_60s"]}


def _missing_manifest(path: Path, rows: int) -> Path:
    """A fresh manifest of ``rows`` missing files, with no results or journal left from an earlier run."""
    for suffix in (".results.parquet", ".journal.sqlite", ".journal.sqlite-wal", ".journal.sqlite-shm"):
        path.with_name(path.stem + suffix).unlink(missing_ok=True)
    with path.open("w") as f:
        f.write("id,path,note\n")
        f.writelines(f"m{i},missing/dir{i % 1000}/img_{i}.jpg,n{i % 7}\n" for i in range(rows))
    return path


def _cli(manifest: Path, emu: Emulator, directory: Path) -> tuple[float, int, int]:
    """Run the real CLI in a child; return (seconds, exit code, peak RSS of that child alone in MB)."""
    env = {**os.environ, "NCLOUD_ACCESS_KEY": emu.credentials.access_key,
           "NCLOUD_SECRET_KEY": emu.credentials.secret_key}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ingest", str(manifest), "--workspace", emu.workspace,
         "--endpoint", emu.base_url, "--out", str(directory / (manifest.stem + ".results.parquet")),
         "--no-progress", "--log-format", "json"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (RUSAGE_CHILDREN mixes all children)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    return seconds, proc.returncode, usage.ru_maxrss // 1024


def _big(directory: Path) -> dict[str, Any]:
    rows = 1_000_000 // SCALE
    manifest = _missing_manifest(directory / f"missing_{rows}.csv", rows)
    with emulator_in_thread(EmulatorConfig(storage="hash")) as emu:
        seconds, code, rss = _cli(manifest, emu, directory)
        calls = emu.counters.snapshot(arrivals=False)["presign_calls"]
    return {"rows": rows, "seconds": round(seconds, 1), "rows_per_s": round(rows / seconds), "exit_code": code,
            "peak_rss_mb": rss, "api_calls": calls}


def _finished_archive(directory: Path, rows: int, distinct: int) -> tuple[Path, Path]:
    """A manifest of ``rows`` rows over ``distinct`` small photos and a journal in which every row is already
    uploaded with the photo's stamp and sha256 (what a finished run leaves; written directly, because uploading
    100,000 rows at 50/s would take more than half an hour)."""
    import hashlib

    from pipeline.journal import Journal
    from pipeline.models import RowResult, Status
    from pipeline.runner.plan import stamp_of

    photos = directory / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    facts = []
    for i in range(distinct):
        path = photos / f"s{i:04d}.jpg"
        make_jpeg(path, 300, 280, seed=10_000 + i, quality=70)  # afresh: an earlier bench changed some
        facts.append((stamp_of(path), hashlib.sha256(path.read_bytes()).hexdigest()))
    manifest = directory / f"finished_{rows}.csv"
    journal = directory / f"finished_{rows}.journal.sqlite"
    for stale in (journal, journal.with_name(journal.name + "-wal"), journal.with_name(journal.name + "-shm")):
        stale.unlink(missing_ok=True)
    with manifest.open("w") as f:
        f.write("id,path,note\n")
        f.writelines(f"f{i},photos/s{i % distinct:04d}.jpg,n{i % 7}\n" for i in range(rows))
    with Journal.open(journal, workspace=DEFAULT_WORKSPACE) as j:
        for start in range(0, rows, 10_000):
            j.record_many([
                RowResult(i, f"f{i}", Status.UPLOADED, thumbnail_key=f"{DEFAULT_WORKSPACE}/k/f{i}.jpg",
                          source_sha256=facts[i % distinct][1], source_stamp=facts[i % distinct][0],
                          uploaded_at="2026-11-29T00:00:00.000+00:00", attempts=1)
                for i in range(start, min(rows, start + 10_000))])
    return manifest, journal


def _resume(directory: Path) -> dict[str, Any]:
    """Re-run of a finished 100,000-row journal (goal <= 10 s, 0 API calls), then of the same manifest with 1 %
    of its rows' photos changed (goal <= 15 s plus their uploads at the 50/s cap)."""
    rows, distinct = 100_000 // SCALE, 1000 // SCALE
    manifest, _ = _finished_archive(directory / "resume", rows, distinct)
    with emulator_in_thread(EmulatorConfig(storage="hash")) as emu:
        again, code, rss = _cli(manifest, emu, manifest.parent)
        snap = emu.counters.snapshot(arrivals=False)
        calls = snap["presign_calls"] + snap["status_calls"] + snap["put_calls"]
        changed_files = distinct // 100  # each photo stands in rows / distinct rows: 1 % of the rows
        for i in range(changed_files):
            make_jpeg(manifest.parent / "photos" / f"s{i:04d}.jpg", 300, 280, seed=20_000 + i, quality=70)
        emu.reset_counters()
        changed_s, changed_code, _ = _cli(manifest, emu, manifest.parent)
        puts = emu.counters.snapshot(arrivals=False)["put_calls"]
    return {"rows": rows, "rerun_s": round(again, 2), "exit_code": code, "api_calls": calls, "peak_rss_mb": rss,
            "changed_rows": changed_files * (rows // distinct), "changed_uploads": puts,
            "changed_rerun_s": round(changed_s, 1), "changed_exit_code": changed_code,
            "changed_rerun_minus_uploads_at_cap_s": round(changed_s - puts / 50.0, 1)}


def _noop(directory: Path, rows: int) -> dict[str, Any]:
    """A no-op re-run of a finished ``rows``-row journal, as a nightly job meets it (the journal as the previous
    night's run closed it: one untimed run first, since the archive's journal is written directly): us a row
    from the run's own duration, the command's wall seconds, its CPU seconds and peak RSS, and the API calls it
    made (goal 0)."""
    import json

    manifest, journal = _finished_archive(directory / f"noop{rows}", rows, max(1, rows // 100))
    with emulator_in_thread(EmulatorConfig(storage="hash")) as emu:
        env = {**os.environ, "NCLOUD_ACCESS_KEY": emu.credentials.access_key,
               "NCLOUD_SECRET_KEY": emu.credentials.secret_key}
        log = manifest.with_suffix(".log")
        for _night in range(2):
            started = time.monotonic()
            with log.open("w") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "pipeline", "ingest", str(manifest), "--workspace", emu.workspace,
                     "--endpoint", emu.base_url, "--journal", str(journal), "--no-progress", "--log-format",
                     "json"], env=env, stdout=subprocess.DEVNULL, stderr=err)
                _, status, usage = os.wait4(proc.pid, 0)
            wall = time.monotonic() - started
        snap = emu.counters.snapshot(arrivals=False)
    finished = [json.loads(line) for line in log.read_text().splitlines() if '"run_finished"' in line]
    duration = float(finished[-1]["duration_s"]) if finished else float("nan")
    return {"rows": rows, "us_per_row": round(duration / rows * 1e6, 1), "run_s": round(duration, 2),
            "command_wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": usage.ru_maxrss // 1024, "exit_code": os.waitstatus_to_exitcode(status),
            "api_calls": snap["presign_calls"] + snap["status_calls"] + snap["put_calls"]}


def run(out_dir: Path) -> dict[str, Any]:
    """Run all four measurements; print and return the figures."""
    work = out_dir / "runner-work"
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {}
    figures["no_confirm"] = end_to_end(work / "photos", 3000 // SCALE, confirm=False)
    print("end-to-end, --no-confirm, cap 50/s:", figures["no_confirm"], flush=True)
    figures["confirm"] = end_to_end(work / "photos", 1200 // SCALE, confirm=True)
    print("end-to-end, confirm on, cap 1000/min:", figures["confirm"], flush=True)
    figures["million_missing"] = _big(work)
    print("1M-row manifest of missing files:", figures["million_missing"], flush=True)
    figures["resume_100k"] = _resume(work)
    print("re-run of a finished 100k-row journal:", figures["resume_100k"], flush=True)
    for rows in (100_000 // SCALE, 1_000_000 // SCALE):
        figures[f"noop_{rows}"] = _noop(work, rows)
        print(f"no-op re-run of {rows:,} finished rows:", figures[f"noop_{rows}"], flush=True)
    return figures
