"""The engines against each other: a dry run (the audit: every row read and prepared, no API call) of 12 MP
phone photos through the real CLI, ``--engine local`` (this machine's 2-thread pool, and with ``--processes``
its 2-process pool) and ``--engine ray``.

Ray is measured two ways: joining a Ray already running (``--ray-address``, started once by this benchmark with
this machine's CPUs: what a cluster user sees) and starting a local Ray for the run (no address: its start-up
is in the figure). Local and joined runs alternate, so both see the same load. No run is niced: Ray's workers,
raylet and GCS run at normal priority, and a niced driver would wait behind them. rows/s comes from the run's
own ``duration_s`` (the interpreter's start-up left out); each figure is the best of ``RUNS``, every run's
seconds listed beside it. CPU seconds per photo are measured twice: in the thread pool's runs (the child's
rusage over its rows, driver included, the least of them) and in a worker (a process preparing the same photos
on its main thread, as a Ray or ``--processes`` worker does, ``engines.heap`` on): the README's table of
cluster sizes is derived from the worker's.

Then uploads with ``--engine ray`` (joined) of already-acceptable 1-3 MP JPEGs at the API's cap (bench_runner's
end-to-end run, ``--no-confirm``, the emulator in its own process): rate from the emulator's presign arrivals.

Goals: ray (joined) >= 0.85x local on this 2-core machine; the uploads still at the cap (>= 49.5/s).
``BENCH_QUICK=1`` shrinks the rows by 8x (the uploads by 10x). A run joining a cluster starts its own worker
processes (about 1.5 s here, overlapped with start-up as far as it goes): a fixed cost that 256 rows make
small, as real runs do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.bench_runner import end_to_end
from bench.niced import Ingest, ingest_niced
from pipeline import samples

QUICK = os.environ.get("BENCH_QUICK") == "1"
ROWS = 32 if QUICK else 256
UPLOADS = 150 if QUICK else 1500
DISTINCT = 8
RUNS = 3
ENDPOINT = "http://127.0.0.1:9"  # a dry run calls no API


def _photos(directory: Path) -> Path:
    """``DISTINCT`` 12 MP JPEGs (a third tagged EXIF orientation 6, with GPS, as bench_images makes them) and a
    manifest of ``ROWS`` rows cycling through them, each with its own id."""
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(DISTINCT):
        path = directory / f"phone{i}.jpg"
        if not path.exists():
            samples.make_jpeg(path, 4032, 3024, orientation=6 if i % 3 == 0 else 1, exif_gps=True, seed=10 + i)
    manifest = directory / f"engine_{ROWS}.csv"
    manifest.write_text("id,path\n" + "".join(f"r{i},phone{i % DISTINCT}.jpg\n" for i in range(ROWS)))
    return manifest


def _audit(manifest: Path, out: Path, n: int, *args: str) -> Ingest:
    """One dry run with ``args``, writing its own results (removed after)."""
    run = ingest_niced(manifest, ENDPOINT, "--dry-run", "--out", str(out / f"audit{n}.parquet"), "--journal",
                       str(out / f"audit{n}.sqlite"), *args, niceness=0)
    for name in ("parquet", "sqlite"):
        (out / f"audit{n}.{name}").unlink(missing_ok=True)
    if run.exit_code != 0:
        raise RuntimeError(f"the dry run {args} ended {run.exit_code}")
    return run


WORKER = """
import json, sys, time
from pathlib import Path
from pipeline.engines.work import Task, work
from pipeline.models import ImagePolicy
photos = [Path(p) for p in sys.argv[2:]]
for p in photos:  # warm: imports, Pillow's plugins, the heap's first pages
    work(Task(p, ImagePolicy(), keep_data=False))
rounds, started = int(sys.argv[1]), time.process_time()
for _ in range(rounds):
    for p in photos:
        work(Task(p, ImagePolicy(), keep_data=False))
print(json.dumps((time.process_time() - started) / (rounds * len(photos))))
"""


def _worker_cpu_per_photo(directory: Path) -> float:
    """CPU seconds a photo in a worker process (``work`` on its main thread, as a Ray or pool process runs it;
    the least of three children, each through every distinct photo ``ROWS // DISTINCT // 4`` times)."""
    photos = [str(directory / f"phone{i}.jpg") for i in range(DISTINCT)]
    rounds = str(max(1, ROWS // DISTINCT // 4))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return min(float(json.loads(subprocess.run([sys.executable, "-c", WORKER, rounds, *photos], env=env,
                                               capture_output=True, text=True, check=True).stdout))
               for _ in range(3))


def _best(runs: list[Ingest]) -> Ingest:
    return min(runs, key=lambda r: r.finished["duration_s"])


def _rate(run: Ingest) -> float:
    return round(ROWS / run.finished["duration_s"], 2)


def run(out_dir: Path) -> dict[str, Any]:
    import ray

    work = out_dir / "engine"
    manifest = _photos(work)
    local: list[Ingest] = []
    processes: list[Ingest] = []
    joined: list[Ingest] = []
    # Local and joined runs alternate, so both see the same load of a machine that may be shared.
    ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        address = ray.get_runtime_context().gcs_address
        for n in range(RUNS):
            local.append(_audit(manifest, work, n, "--engine", "local"))
            processes.append(_audit(manifest, work, n, "--engine", "local", "--processes"))
            joined.append(_audit(manifest, work, n, "--engine", "ray", "--ray-address", address))
        uploads = end_to_end(work / "uploads", UPLOADS, confirm=False,
                             extra=("--engine", "ray", "--ray-address", address))
    finally:
        ray.shutdown()
    cold = _best([_audit(manifest, work, n, "--engine", "ray") for n in range(RUNS)])  # a Ray per run
    best_local, best_processes, best_joined = _best(local), _best(processes), _best(joined)
    cpu_per_photo = min(r.cpu_s for r in local) / ROWS
    worker_cpu = _worker_cpu_per_photo(work)
    figures = {
        "rows": ROWS, "photo": "12 MP JPEG (4032x3024), default policy", "runs": RUNS,
        "local_rows_per_s": _rate(best_local), "processes_rows_per_s": _rate(best_processes),
        "processes_to_threads": round(_rate(best_processes) / _rate(best_local), 2),
        "ray_joined_rows_per_s": _rate(best_joined),
        "ray_cold_rows_per_s": _rate(cold),
        "ray_joined_to_local": round(_rate(best_joined) / _rate(best_local), 2),
        "ray_cold_to_local": round(_rate(cold) / _rate(best_local), 2),
        "each_local_s": [r.finished["duration_s"] for r in local],
        "each_processes_s": [r.finished["duration_s"] for r in processes],
        "each_ray_joined_s": [r.finished["duration_s"] for r in joined],
        "cpu_s_per_photo_local": round(cpu_per_photo, 3), "cpu_s_per_photo_worker": round(worker_cpu, 3),
        "local_s": best_local.finished["duration_s"], "ray_joined_s": best_joined.finished["duration_s"],
        "ray_cold_s": cold.finished["duration_s"], "goal_ray_to_local": 0.85,
        "ray_uploads_at_cap": uploads, "goal_uploads_per_s": 49.5,
    }
    _print(figures)
    return figures


def _print(f: dict[str, Any]) -> None:
    print(f"audit of {f['rows']} x {f['photo']}:")
    print(f"  local (2-thread pool)       {f['local_rows_per_s']:6.2f} rows/s  ({f['local_s']:.1f} s)")
    print(f"  local --processes           {f['processes_rows_per_s']:6.2f} rows/s  "
          f"{f['processes_to_threads']}x threads")
    print(f"  ray, joined (--ray-address) {f['ray_joined_rows_per_s']:6.2f} rows/s  ({f['ray_joined_s']:.1f} s)  "
          f"{f['ray_joined_to_local']}x local (goal >= {f['goal_ray_to_local']}x)")
    print(f"  ray, local Ray per run      {f['ray_cold_rows_per_s']:6.2f} rows/s  ({f['ray_cold_s']:.1f} s)  "
          f"{f['ray_cold_to_local']}x local (Ray's start-up included)")
    up = f["ray_uploads_at_cap"]
    print(f"uploads with --engine ray (joined), {up['rows']} acceptable JPEGs, cap 50/s: "
          f"{up['server_rows_per_s']} rows/s at the emulator (goal >= {f['goal_uploads_per_s']}), "
          f"{up['responses_429']} x 429, max {up['max_presign_per_1s']} presigns in any 1 s")
    print(f"  CPU seconds per photo: {f['cpu_s_per_photo_local']} (thread pool run, driver included), "
          f"{f['cpu_s_per_photo_worker']} (a worker process)")
