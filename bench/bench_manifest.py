"""Manifest reading and journal throughput at a million rows.

Figures: rows/s of ``Manifest.scan()`` and ``Manifest.rows()`` over a 1,000,000-row CSV whose paths point
at missing files (with and without ``--root``, which adds a realpath check per row), the peak RSS of that
pass, ``Journal.record_many`` rows/s for 1,000,000 rejected rows, writing the 1,000,000-row results file,
and the skip pass of a re-run over a finished 100,000-row journal (goal: well under 10 s).
Each measurement runs in a fresh interpreter so its peak RSS is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROWS = 1_000_000
RESUME_ROWS = 100_000
BATCH = 4096
FLUSH = 512  # the runner commits rejected rows in groups of this size


def _peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def make_csv(path: Path, rows: int) -> None:
    """A manifest of ``rows`` rows (id, path, note) whose files do not exist; written in a stream."""
    with path.open("w", encoding="utf-8") as fh:
        fh.write("id,path,note\n")
        for start in range(0, rows, 10_000):
            fh.write(
                "".join(
                    f"p{i},photos/{i % 997:03d}/{i:07d}.jpg,row {i}\n"
                    for i in range(start, min(rows, start + 10_000))
                )
            )


def _read(csv_path: str, root: str | None) -> dict[str, Any]:
    from pipeline.manifest import Manifest

    baseline = _peak_rss_mb()  # the interpreter with the package imported
    m = Manifest.open(Path(csv_path), root=Path(root) if root else None)
    started = time.perf_counter()
    info = m.scan()
    scan_s = time.perf_counter() - started
    started = time.perf_counter()
    problems = sum(1 for row in m.rows() if row.problem is not None)
    rows_s = time.perf_counter() - started
    return {
        "rows": info.rows,
        "scan_rows_per_s": round(info.rows / scan_s),
        "rows_rows_per_s": round(info.rows / rows_s),
        "scan_plus_rows_per_s": round(info.rows / (scan_s + rows_s)),
        "problems": problems,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _journal_bulk(csv_path: str, work: str) -> dict[str, Any]:
    from pipeline.journal import Journal
    from pipeline.manifest import Manifest, write_results
    from pipeline.models import RowResult, Status

    baseline = _peak_rss_mb()
    with Journal.open(
        Path(work) / "bulk.sqlite", fingerprint="f", rows=ROWS, workspace="w", manifest_name="m"
    ) as j:
        record_s = 0.0
        for start in range(0, ROWS, FLUSH):
            batch = [
                RowResult(
                    i, f"p{i}", Status.REJECTED, reason="not_found", detail="no such file: photos/x.jpg"
                )
                for i in range(start, min(ROWS, start + FLUSH))
            ]
            started = time.perf_counter()  # the journal's time only, not the making of the results
            j.record_many(batch)
            record_s += time.perf_counter() - started
        manifest = Manifest.open(Path(csv_path))
        started = time.perf_counter()
        written = write_results(Path(work) / "results.parquet", manifest, j.results(ROWS))
        write_s = time.perf_counter() - started
    return {
        "record_many_rows_per_s": round(ROWS / record_s),
        "record_many_batch": FLUSH,
        "write_results_rows_per_s": round(written / write_s),
        "baseline_rss_mb": baseline,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _resume(work: str) -> dict[str, Any]:
    from pipeline.journal import Journal
    from pipeline.manifest import Manifest
    from pipeline.models import RowResult, Status

    csv_path = Path(work) / "resume.csv"
    make_csv(csv_path, RESUME_ROWS)
    info = Manifest.open(csv_path).scan()
    path = Path(work) / "resume.sqlite"
    with Journal.open(
        path, fingerprint=info.fingerprint, rows=info.rows, workspace="w", manifest_name="m"
    ) as j:
        for start in range(0, RESUME_ROWS, BATCH):
            j.record_many(
                [
                    RowResult(
                        i,
                        f"p{i}",
                        Status.UPLOADED,
                        f"tk-{i}",
                        source_sha256=f"{i:064x}",
                        attempts=1,
                        uploaded_at="2026-01-01T00:00:00Z",
                    )
                    for i in range(start, min(RESUME_ROWS, start + BATCH))
                ]
            )
    # The re-run: scan, open, reset in-flight rows, then one done_indices query per batch of rows.
    started = time.perf_counter()
    manifest = Manifest.open(csv_path, batch_size=BATCH)
    info = manifest.scan()
    skipped = 0
    query_s = 0.0
    with Journal.open(
        path, fingerprint=info.fingerprint, rows=info.rows, workspace="w", manifest_name="m"
    ) as j:
        j.mark_orphans_from_inflight()
        j.counts()
        chunk: list[int] = []
        for row in manifest.rows():
            chunk.append(row.index)
            if len(chunk) == BATCH or row.index == info.rows - 1:
                t = time.perf_counter()
                done = j.done_indices(chunk[0], chunk[-1] + 1, retry_failed=True)
                query_s += time.perf_counter() - t
                skipped += sum(1 for i in chunk if i in done)
                chunk = []
    total_s = time.perf_counter() - started
    return {
        "resume_rows": RESUME_ROWS,
        "resume_skipped": skipped,
        "resume_total_s": round(total_s, 3),
        "done_indices_total_s": round(query_s, 3),
        "done_indices_per_batch_ms": round(1000 * query_s / -(-RESUME_ROWS // BATCH), 3),
    }


def _child(func: str, *args: str) -> dict[str, Any]:
    """Run ``func(*args)`` of this module in a fresh interpreter (its own peak RSS)."""
    code = f"import json, bench.bench_manifest as b; print(json.dumps(b.{func}(*{args!r})))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{func} failed: {done.stderr.strip().splitlines()[-1:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(out_dir: Path) -> dict[str, Any]:
    """Measure and print the figures; ``out_dir`` is where ``python -m bench`` keeps results (unused here)."""
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-manifest-") as work:
        csv_path = Path(work) / "million.csv"
        started = time.perf_counter()
        make_csv(csv_path, ROWS)
        figures["csv_mb"] = round(csv_path.stat().st_size / 2**20, 1)
        figures["generate_s"] = round(time.perf_counter() - started, 2)
        figures["read"] = _child("_read", str(csv_path), "")
        figures["read_with_root"] = _child("_read", str(csv_path), work)
        figures["journal"] = _child("_journal_bulk", str(csv_path), work)
        figures["resume"] = _child("_resume", work)
    for name, value in figures.items():
        print(f"{name}: {value}")
    return figures


if __name__ == "__main__":
    run(Path(__file__).parent / "results")
