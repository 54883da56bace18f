"""``thumbnail-ingest demo``: a sample archive, the emulator in a child process, one ingest with the progress bar.

The archive mixes what real ones hold: ordinary and geotagged phone photos, rotated ones, a few too large to
upload as they are, PNG scans with alpha, iPhone HEIC, photos too small to use, truncated copies, text files
named .jpg, missing files and duplicates. Each run starts fresh (the emulator forgets between runs).
"""

from __future__ import annotations

import csv
import random
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from pipeline import runner, samples
from pipeline.emulator.child import emulator_in_child
from pipeline.progress import render_summary
from pipeline.python_api import make_settings

__all__ = ["build_archive", "run_demo"]

_Spec = tuple[str, Callable[[Path], object]]


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _specs(count: int, rng: random.Random) -> list[_Spec]:
    """``count`` (file name, writer) pairs in a realistic mix."""
    def jpeg(w: int, h: int, seed: int, **kw: object) -> Callable[[Path], object]:
        return lambda p: samples.make_jpeg(p, w, h, seed=seed, **kw)  # type: ignore[arg-type]

    fixed: list[_Spec] = [
        ("huge_01.jpg", jpeg(6000, 4000, 901)),
        ("huge_02.jpg", jpeg(4500, 6000, 902)),
        ("iphone_01.heic", lambda p: samples.make_image(p, 1600, 1200, "HEIF", quality=80, seed=903)),
        ("iphone_02.heic", lambda p: samples.make_image(p, 1200, 1600, "HEIF", quality=80, seed=904)),
        ("scan_alpha.png", lambda p: samples.make_png(p, 1400, 1000, mode="RGBA", seed=905)),
        ("scan_16bit.png", lambda p: samples.make_png(p, 1000, 1400, mode="I;16", seed=906)),
        ("cmyk_print.jpg", jpeg(1500, 1100, 907, mode="CMYK")),
        ("photo.webp", lambda p: samples.make_webp(p, 1200, 900, seed=908)),
        ("empty.jpg", lambda p: p.write_bytes(b"")),
        ("notes.jpg", lambda p: p.write_bytes(b"meeting notes, not a photo\n" * 40)),
        ("bomb.png", samples.make_bomb_png),
    ]
    out = list(fixed)
    for i in range(max(0, count - len(fixed))):
        seed = 1000 + i
        w, h = rng.choice([(1200, 900), (1600, 1200), (2000, 1500), (900, 1200), (1280, 960)])
        roll = rng.random()
        if roll < 0.55:
            out.append((f"photo_{i:04d}.jpg", jpeg(w, h, seed)))
        elif roll < 0.70:
            out.append((f"geotagged_{i:04d}.jpg", jpeg(w, h, seed, exif_gps=True, xmp=True)))
        elif roll < 0.80:
            orientation = rng.choice([3, 6, 8])
            out.append((f"rotated_{i:04d}.jpg", partial(samples.make_oriented_jpeg, width=w, height=h,
                                                         orientation=orientation, seed=seed)))
        elif roll < 0.88:
            out.append((f"scan_{i:04d}.png", partial(samples.make_png, width=1000, height=800, seed=seed)))
        elif roll < 0.95:
            out.append((f"thumb_{i:04d}.jpg", jpeg(rng.randint(120, 250), rng.randint(120, 250), seed)))
        else:
            data = samples.make_jpeg(None, w, h, seed=seed)
            cut = rng.randint(len(data) // 3, len(data) - 200)
            out.append((f"truncated_{i:04d}.jpg", partial(_write, data=data[:cut])))
    return out[:count] if count >= len(fixed) else out


def build_archive(directory: Path, count: int = 300, *, seed: int = 7) -> Path:
    """Write ``count`` sample files under ``directory/photos`` and a manifest listing them (plus two missing
    files and three duplicate rows); return the manifest's path."""
    photos = directory / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    specs = _specs(count, rng)
    with ThreadPoolExecutor(max_workers=2) as pool:  # Pillow releases the GIL while encoding
        list(pool.map(lambda spec: spec[1](photos / spec[0]), specs))
    names = [name for name, _ in specs]
    rows = [(f"p{i:05d}", f"photos/{name}") for i, name in enumerate(names)]
    rows += [(f"p{len(rows):05d}", "photos/lost_in_migration.jpg"), (f"p{len(rows) + 1:05d}", "photos/gone.png")]
    rows += [(f"p{len(rows) + k:05d}", rows[k * 7][1]) for k in range(3)]  # the same files listed twice
    manifest = directory / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "path", "person"])
        for i, (key, path) in enumerate(rows):
            writer.writerow([key, path, f"Person {i % 97:02d}"])
    return manifest


def next_steps(directory: Path, results: Path | None) -> str:
    """What to do after the demo: look at what it did, run your own manifest against the emulator, go live."""
    tool = Path(sys.executable).with_name("thumbnail-ingest")
    command = str(tool) if tool.exists() else "thumbnail-ingest"
    report = (directory / "report.html").absolute()
    lines = ["", "next:"]
    if report.exists():
        lines.append(f"  1. open the run's report in a browser:  {report}")
    elif results is not None:
        lines.append(f"  1. read the results:  {sys.executable} -c \"import pyarrow.parquet as pq; "
                     f"print(pq.read_table('{results}').slice(0, 10).to_pylist())\"")
    lines += [
        f"  2. your own manifest against the emulator: `{command} emulator` in one terminal, then paste the",
        "     export and ingest lines it prints (a CSV with a 'path' column; add --dry-run to only look)",
        f"  3. for real: export NCLOUD_ACCESS_KEY / NCLOUD_SECRET_KEY, then `{command} ingest photos.csv "
        "--workspace YOUR_WORKSPACE --dry-run`, and without --dry-run once the plan looks right",
    ]
    return "\n".join(lines)


def run_demo(directory: Path, *, count: int = 300, progress: bool = True, log_format: str = "console") -> int:
    """Build the archive, start the emulator in a child process, ingest, print the summary; return the exit
    code."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in ("results.parquet", "journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm", "report.html"):
        (directory / stale).unlink(missing_ok=True)
    print(f"generating a sample archive of {count} photos in {directory / 'photos'} ...", file=sys.stderr)
    manifest = build_archive(directory, count)
    # In a child process, as the real service is apart from us: see ``emulator_in_child``.
    with emulator_in_child("--storage", "hash") as emu:
        print(f"emulator listening on {emu.base_url} (workspace {emu.workspace!r})", file=sys.stderr)
        settings = make_settings(
            workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
            out=directory / "results.parquet", journal=directory / "journal.sqlite",
            report=directory / "report.html", progress=progress, log_format=log_format,
        )
        summary = runner.run(settings, manifest, handle_signals=True)
        calls = emu.counters()
    print(render_summary(summary), file=sys.stderr)
    print(
        f"emulator saw {calls.get('presign_calls')} presign calls, {calls.get('put_calls')} PUTs, "
        f"{calls.get('status_calls')} status calls, {calls.get('responses_429')} answered 429",
        file=sys.stderr,
    )
    print(next_steps(directory, summary.results_path), file=sys.stderr)
    return summary.exit_code
