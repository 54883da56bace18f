"""End-to-end with remote sources (issue 14): 3,000 objects of 1-3 MB in an S3 server (moto, its own process),
``--no-confirm`` at the default 50/s presign cap, the emulator in its own process.

Figures: rows/s measured from the emulator's presign arrivals (goal >= 49.5/s: fetching is never the
bottleneck), the client's CPU seconds per row, and the run's peak RSS. ``BENCH_QUICK=1`` runs 300 objects.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config  # type: ignore[import-untyped]
from emulator_tools import emulator_process, fetch_state

from bench.niced import ingest_niced
from pipeline.samples import make_jpeg

QUICK = os.environ.get("BENCH_QUICK") == "1"
OBJECTS = 300 if QUICK else 3000
BUCKET = "archive"
ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _moto() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, endpoint
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.2)


def _fill(endpoint: str, work: Path) -> Path:
    """Upload OBJECTS photos of 1-3 MB (a few dozen distinct ones, each under its own key) and write the
    manifest listing them."""
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          config=Config(s3={"addressing_style": "path"}), **{
                              "aws_access_key_id": "bench", "aws_secret_access_key": "bench"})
    client.create_bucket(Bucket=BUCKET)
    sizes = [(1600, 1200), (2000, 1500), (2400, 1800)]
    bodies = [make_jpeg(None, *sizes[i % 3], seed=500 + i, quality=95) for i in range(24)]
    for i in range(OBJECTS):
        client.put_object(Bucket=BUCKET, Key=f"photos/{i:05d}.jpg", Body=bodies[i % len(bodies)])
    manifest = work / f"remote_{OBJECTS}.csv"
    manifest.write_text("id,path\n" + "".join(f"r{i},s3://{BUCKET}/photos/{i:05d}.jpg\n" for i in range(OBJECTS)))
    return manifest


def run(out_dir: Path) -> dict[str, Any]:
    """Run it; print and return the figures."""
    work = out_dir / "remote-work"
    work.mkdir(parents=True, exist_ok=True)
    for name in (f"remote_{OBJECTS}.results.parquet", f"remote_{OBJECTS}.journal.sqlite"):
        (work / name).unlink(missing_ok=True)
    os.environ.update(ENV)
    moto, endpoint = _moto()
    try:
        manifest = _fill(endpoint, work)
        with emulator_process("--rate", "50", "--storage", "hash", no_gc=True) as base:
            run = ingest_niced(manifest, base, "--s3-endpoint", endpoint, "--no-confirm")
            snap = fetch_state(base)
    finally:
        moto.terminate()
        moto.wait(timeout=30)
    arrivals = sorted(snap["presign_arrivals"])
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
    figures = {
        "objects": OBJECTS, "uploaded": run.finished["by_status"].get("uploaded", 0), "wall_s": round(run.seconds, 1),
        "server_rows_per_s": round(rate, 2), "max_presign_per_1s": snap["max_presign_per_1s"],
        "responses_429": snap["responses_429"], "client_cpu_s_per_row": round(run.cpu_s / OBJECTS, 4),
        "peak_rss_mb": run.peak_rss_mb,
    }
    print("remote sources end to end:", figures, flush=True)
    return figures
