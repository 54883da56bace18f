"""The run report on a 1,000,000-row results file (issue 15): seconds and peak RSS of the report alone.

The results file is synthetic (pyarrow, no images): a mix of uploaded, rejected and failed rows over several
reasons, changed photos and an hour of ``uploaded_at`` times, so every section of the page is built. The report
runs in a child process so its peak RSS is its own (``os.wait4``), once from Parquet and once from CSV.
Goals: under 60 s, memory flat (a few hundred MB at most whatever the size), the page a few MB.
``BENCH_QUICK=1`` shrinks the file 10x.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from pipeline.results import result_schema

ROWS = 1_000_000 // (10 if os.environ.get("BENCH_QUICK") == "1" else 1)
_REASONS = ["too_small", "corrupt", "unsupported_format", "not_found", "too_many_pixels", "upload_failed"]
_CHILD = """
import sys
from pathlib import Path
from pipeline.report import write_report
info = write_report(Path(sys.argv[1]), Path(sys.argv[2]))
print(info.size_bytes, info.rows)
"""


_MAKE = """
import sys
from pathlib import Path
from bench.bench_report import synthetic_results
synthetic_results(Path(sys.argv[1]), int(sys.argv[2]))
"""


def synthetic_results(path: Path, rows: int) -> Path:
    """A results file of ``rows`` rows in the layout of ``pipeline.results`` (Parquet or CSV by suffix)."""
    index = pa.array(range(rows), pa.int64())
    text = index.cast(pa.string())
    kind = pc.bit_wise_and(index, 15)  # 0-11 uploaded, 12-14 rejected, 15 failed
    status = pc.if_else(pc.less(kind, 12), "uploaded", pc.if_else(pc.less(kind, 15), "rejected", "failed"))
    good = pc.equal(status, "uploaded")
    reason_index = pc.bit_wise_and(pc.shift_right(index, 4), 7)
    reasons = pa.array(_REASONS + _REASONS[:2]).take(reason_index)
    reason = pc.if_else(good, pa.scalar(None, pa.string()), reasons)
    actions = pa.array(["passthrough", "resized", "reoriented", "converted+resized"]).take(
        pc.bit_wise_and(index, 3))
    start = int(datetime(2024, 5, 1, tzinfo=timezone.utc).timestamp() * 1_000_000)
    stamps = pc.add(pc.multiply(index, 20_000), start).cast(pa.timestamp("us", tz="UTC"))  # 50 rows/s
    null_text = pa.nulls(rows, pa.string())
    inputs = pa.schema([("id", pa.string()), ("path", pa.string()), ("team", pa.string())])
    csv = path.suffix == ".csv"
    schema = result_schema(inputs, csv=csv)
    columns: dict[str, pa.Array] = {
        "id": pc.binary_join_element_wise("row", text, ""),
        "path": pc.binary_join_element_wise("archive/dir", pc.bit_wise_and(index, 1023).cast(pa.string()), "/img",
                                            text, ".jpg", ""),
        "team": pc.bit_wise_and(index, 7).cast(pa.string()),
        "status": status,
        "thumbnail_key": pc.if_else(good, pc.binary_join_element_wise("ws/k", text, ".jpg", ""), null_text),
        "reason": reason,
        "detail": pc.if_else(good, null_text, pc.binary_join_element_wise("detail of row ", text, "")),
        "action": pc.if_else(good, actions, null_text),
        "width": pc.if_else(good, pa.scalar(1280, pa.int32()), pa.nulls(rows, pa.int32())),
        "height": pc.if_else(good, pa.scalar(960, pa.int32()), pa.nulls(rows, pa.int32())),
        "bytes": pc.if_else(good, pa.scalar(250_000, pa.int64()), pa.nulls(rows, pa.int64())),
        "source_sha256": null_text,
        "attempts": pa.array([1] * rows, pa.int32()),
        "uploaded_at": pc.if_else(good, stamps, pa.nulls(rows, stamps.type)),
        "duplicate_of": null_text,
        "person_id": null_text,  # a run without --attach
        "attached_at": pa.nulls(rows, schema.field("attached_at").type),
        "run_id": pa.array(["20240501T000000Z-0a1b2c"] * rows, pa.string()),  # one run did every row
        "this_run": status,  # uploaded, rejected or failed by that run
    }
    if csv:
        columns["uploaded_at"] = columns["uploaded_at"].cast(pa.string())
    table = pa.Table.from_pydict(columns, schema=schema)
    if csv:
        pcsv.write_csv(table, path)
    else:
        pq.write_table(table, path, row_group_size=65_536)  # as pipeline.results writes: a group per batch
    return path


def _report(results: Path, out: Path) -> dict[str, Any]:
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(results), str(out)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    printed = proc.stdout.read().decode().split()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    return {"rows": int(printed[1]) if len(printed) == 2 else None, "exit_code": proc.returncode,
            "seconds": round(seconds, 2), "peak_rss_mb": usage.ru_maxrss // 1024,
            "page_mb": round(int(printed[0]) / 1e6, 2) if printed else None}


def run(out_dir: Path) -> dict[str, Any]:
    """Report time and peak RSS on ``ROWS`` rows, from Parquet and from CSV; print and return the figures."""
    work = out_dir / "report-work"
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {}
    for suffix in (".parquet", ".csv"):
        results = work / f"results_{ROWS}{suffix}"
        # Built in a child: a forked child's peak RSS counts the parent's pages until it execs, so this
        # process must stay small while the report's child starts.
        subprocess.run([sys.executable, "-c", _MAKE, str(results), str(ROWS)], check=True)
        figures[suffix.lstrip(".")] = _report(results, work / f"report_{ROWS}{suffix}.html")
        print(f"report of {ROWS:,} rows from {suffix}:", figures[suffix.lstrip(".")], flush=True)
    return figures
