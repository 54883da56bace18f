"""The fetch stage alone (issue 14): 3,000 objects of 1-3 MB from a real S3 server (moto, loopback).

A child process fetches every object at the default bounds (concurrency 32, 256 MB in flight) and drops
the bytes, as the next stage would consume them; it reports wall time, its own CPU time and its own peak
RSS (``VmHWM``, so moto's memory is not counted). Figures: objects/s and MB/s, client CPU seconds per
object, peak RSS (and its growth over the imports). The same objects are then fetched as presigned
``http://`` URLs, i.e. through the aiohttp transport instead of obstore, for the comparison the issue asks
for. moto itself serves ~50-200 MB/s on a small box, so objects/s is a floor set by the server; CPU seconds
per object is the client's own cost.

``BENCH_QUICK=1`` shrinks the object count 10x.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from s3_fixtures import ChildFetch, fetch_in_child, moto_s3

QUICK = os.environ.get("BENCH_QUICK") == "1"
OBJECTS = 300 if QUICK else 3000
MB = 1 << 20


def _blobs() -> list[bytes]:
    """Eight distinct payloads of 1.0 to 3.0 MB (moto's ingest rate, not payload variety, bounds the setup)."""
    return [os.urandom(MB + (2 * MB * n) // 7) for n in range(8)]


def _figures(report: ChildFetch) -> dict[str, Any]:
    return {
        "objects": report.fetched,
        "mb": round(report.bytes / 1e6, 1),
        "seconds": round(report.seconds, 2),
        "objects_per_s": round(report.fetched / report.seconds, 1),
        "mb_per_s": round(report.bytes / 1e6 / report.seconds, 1),
        "client_cpu_s_per_object": round(report.cpu_seconds / max(report.fetched, 1), 5),
        "peak_rss_mb": round(report.peak_rss / 1e6, 1),
        "rss_growth_over_imports_mb": round((report.peak_rss - report.baseline_rss) / 1e6, 1),
        "budget_peak_mb": round(report.budget_peak / 1e6, 1),
        "retries": report.retries,
    }


def run(out_dir: Path) -> dict[str, Any]:
    """Fetch ``OBJECTS`` objects through obstore and through aiohttp; return both sets of figures."""
    blobs = _blobs()
    with moto_s3() as s3:
        started = time.monotonic()
        keys = [f"bench/{n:05d}.jpg" for n in range(OBJECTS)]
        for n, key in enumerate(keys):
            s3.put(key, blobs[n % len(blobs)])
        setup = time.monotonic() - started
        print(f"  loaded {OBJECTS} objects into moto in {setup:.0f} s", flush=True)
        s3_cells = [f"s3://{s3.bucket}/{key}" for key in keys]
        obstore_run = fetch_in_child(s3_cells, s3_endpoint=s3.endpoint)
        print(f"  obstore: {_figures(obstore_run)}", flush=True)
        urls = [s3.client.generate_presigned_url("get_object", Params={"Bucket": s3.bucket, "Key": key},
                                                 ExpiresIn=3600) for key in keys]
        aiohttp_run = fetch_in_child(urls)
        print(f"  aiohttp (presigned http URLs): {_figures(aiohttp_run)}", flush=True)
    return {"objects": OBJECTS, "setup_seconds": round(setup, 1), "s3_obstore": _figures(obstore_run),
            "http_aiohttp": _figures(aiohttp_run)}
