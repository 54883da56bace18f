"""Run the benchmarks: ``python -m bench [name ...]``.

Each ``bench/bench_<name>.py`` exposes ``run(out_dir) -> dict``; the figures are printed and written to
``bench/results/<name>.json`` together with the machine they were measured on.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCHES = tuple(sorted(path.stem.removeprefix("bench_") for path in Path(__file__).parent.glob("bench_*.py")))
"""Every ``bench_<name>.py`` beside this file, in name order."""


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory": mem, "python": platform.python_version(),
            "platform": platform.platform()}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHES)
    if len(names) > 1:
        # One process per benchmark, so peak-RSS figures are each benchmark's own (ru_maxrss never falls).
        codes = [subprocess.call([sys.executable, "-m", "bench", name]) for name in names]
        return 1 if any(codes) else 0
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(f"machine: {info}")
    failed = 0
    for name in names:
        print(f"\n=== bench {name} ===", flush=True)
        started = time.monotonic()
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            figures = module.run(out_dir)
        except Exception as exc:  # a broken benchmark must not hide the others' figures
            print(f"bench {name} failed: {type(exc).__name__}: {exc}")
            failed += 1
            continue
        record = {"bench": name, "machine": info, "seconds": round(time.monotonic() - started, 1),
                  "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "figures": figures}
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(record, indent=2, default=str))
        print(f"-> {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
