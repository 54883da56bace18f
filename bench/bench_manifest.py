"""Manifest reading at a million rows.

Figures, each from a fresh interpreter so its peak RSS is its own, over a 1,000,000-row CSV whose paths point at
missing files:
- ``read``: rows/s of ``Manifest.scan()`` (count, duplicate keys, CSV types) and of ``Manifest.row_batches()``
  (the run's one read: typed columns and resolved ``Row``s), and the peak RSS of both passes;
- ``read_with_root``: the same with ``--root`` (a realpath check per row);
- ``read_int_ids``: integer ids, so the id column is inferred int64 and cast on the way;
- ``read_no_id``: no id column, so every key is the path cell;
- ``read_and_write``: scan, ``row_batches`` and the 1,000,000-row results Parquet written from those batches
  (the manifest's share of a run's memory; goal: well under 300 MB peak).
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
BATCH = 4096


def _peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def make_csv(path: Path, rows: int, ids: str = "text") -> None:
    """A manifest of ``rows`` rows (``ids``: ``text`` -> ``p7``, ``int`` -> ``7``, ``none`` -> no id column), a
    path whose file does not exist and a note; written in a stream."""
    def line(i: int) -> str:
        key = {"text": f"p{i},", "int": f"{i},", "none": ""}[ids]
        return f"{key}photos/{i % 997:03d}/{i:07d}.jpg,row {i}\n"

    with path.open("w", encoding="utf-8") as fh:
        fh.write("id,path,note\n" if ids != "none" else "path,note\n")
        for start in range(0, rows, 10_000):
            fh.write("".join(line(i) for i in range(start, min(rows, start + 10_000))))


def _read(csv_path: str, root: str) -> dict[str, Any]:
    from pipeline.manifest import Manifest

    baseline = _peak_rss_mb()  # the interpreter with the package imported
    m = Manifest.open(Path(csv_path), root=Path(root) if root else None, batch_size=BATCH)
    started = time.perf_counter()
    info = m.scan()
    scan_s = time.perf_counter() - started
    started = time.perf_counter()
    problems = sum(1 for batch in m.row_batches() for row in batch.rows if row.problem is not None)
    read_s = time.perf_counter() - started
    return {
        "rows": info.rows,
        "id_type": str(m.schema.field("id").type) if "id" in m.schema.names else None,
        "scan_rows_per_s": round(info.rows / scan_s),
        "row_batches_rows_per_s": round(info.rows / read_s),
        "scan_plus_row_batches_rows_per_s": round(info.rows / (scan_s + read_s)),
        "problems": problems,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _read_and_write(csv_path: str, work: str) -> dict[str, Any]:
    from pipeline.manifest import Manifest
    from pipeline.models import RowResult, Status
    from pipeline.results import ResultChunk, write_results

    baseline = _peak_rss_mb()
    started = time.perf_counter()
    m = Manifest.open(Path(csv_path), batch_size=BATCH)
    m.scan()
    chunks = (
        ResultChunk(b.columns, [RowResult(r.index, r.key, Status.REJECTED, reason="not_found") for r in b.rows])
        for b in m.row_batches()
    )
    written = write_results(Path(work) / "results.parquet", m.schema, chunks)
    total_s = time.perf_counter() - started
    return {
        "rows": written,
        "rows_per_s": round(written / total_s),
        "baseline_rss_mb": baseline,
        "peak_rss_mb": _peak_rss_mb(),
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
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{func} failed: {done.stderr.strip().splitlines()[-1:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(out_dir: Path) -> dict[str, Any]:
    """Measure and print the figures; ``out_dir`` is where ``python -m bench`` keeps results (unused here)."""
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-manifest-") as work:
        paths = {ids: Path(work) / f"million-{ids}.csv" for ids in ("text", "int", "none")}
        started = time.perf_counter()
        for ids, path in paths.items():
            make_csv(path, ROWS, ids)
        figures["csv_mb"] = round(paths["text"].stat().st_size / 2**20, 1)
        figures["generate_s"] = round(time.perf_counter() - started, 2)
        figures["read"] = _child("_read", str(paths["text"]), "")
        figures["read_with_root"] = _child("_read", str(paths["text"]), work)
        figures["read_int_ids"] = _child("_read", str(paths["int"]), "")
        figures["read_no_id"] = _child("_read", str(paths["none"]), "")
        figures["read_and_write"] = _child("_read_and_write", str(paths["text"]), work)
    for name, value in figures.items():
        print(f"{name}: {value}")
    return figures


if __name__ == "__main__":
    run(Path(__file__).parent / "results")
