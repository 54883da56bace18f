"""The report of a real run, opened in a real browser (headless Chromium): no console errors, and the numbers
it shows are the results file's.

Skipped only when Chromium is absent and ``CI`` is not set; under CI it must run (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from helpers import write_manifest
from test_report import Page

import pipeline
from pipeline.corpus import make_corpus
from pipeline.emulator import EmulatorConfig, emulator_in_thread
from pipeline.report import write_report
from pipeline.samples import make_jpeg, make_oriented_jpeg

CONSOLE = re.compile(r":CONSOLE\b.*")
"""How Chromium's ``--enable-logging=stderr`` prints a page's console messages (errors and CSP refusals)."""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI is set but chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def open_in_browser(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM after the page loaded, and the console messages Chromium logged for it."""
    proc = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180, check=True,
    )
    return proc.stdout, CONSOLE.findall(proc.stderr)


def test_the_console_check_sees_errors(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" "
                    "content=\"default-src 'none'\"></head><body><p>x</p><script>console.error('boom')</script>"
                    "</body></html>")
    dom, console = open_in_browser(page, tmp_path / "profile")
    assert "<p>x</p>" in dom
    assert console  # the blocked inline script is reported: a page with an error cannot pass unnoticed


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A small mixed archive ingested against the emulator: ``(archive root, results, journal)``."""
    root = tmp_path_factory.mktemp("archive")
    paths = [str(p.relative_to(root)) for p, _ in make_corpus(root / "kinds", scale=0.25)]
    (root / "plain").mkdir()
    for i in range(24):
        make_jpeg(root / "plain" / f"p{i:02d}.jpg", 320 + 16 * (i % 5), 300, seed=200 + i, quality=80)
        paths.append(f"plain/p{i:02d}.jpg")
    for i in range(3):
        make_oriented_jpeg(root / "plain" / f"turned{i}.jpg", 400, 300, 6, seed=300 + i)
        paths.append(f"plain/turned{i}.jpg")
    manifest = write_manifest(root / "manifest.csv", [{"id": f"row{i:03d}", "path": p} for i, p in enumerate(paths)])
    results, journal = root / "manifest.results.parquet", root / "manifest.journal.sqlite"
    with emulator_in_thread(EmulatorConfig()) as emu:
        summary = pipeline.ingest(manifest, workspace=emu.workspace, endpoint=emu.base_url,
                                  credentials=emu.credentials, out=results, journal=journal, progress=False,
                                  rate=0.0, confirm_rate=0.0)
    assert summary.by_status.get("uploaded", 0) >= 24
    return root, results, journal


def test_report_of_a_real_run_renders_in_chromium_with_the_files_numbers(
        real_run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    root, results, journal = real_run
    out = tmp_path / "report.html"
    info = write_report(results, out, journal=journal, root=root)
    dom, console = open_in_browser(out, tmp_path / "profile")
    assert console == []
    page = Page(dom)
    table = pq.read_table(results)
    statuses = Counter(table.column("status").to_pylist())
    assert page.status_counts() == statuses
    assert page.by_id("total-rows") == table.num_rows == info.rows
    failed = table.filter(pc.is_valid(table.column("reason")))
    assert page.reason_counts() == Counter(zip(failed.column("status").to_pylist(),
                                               failed.column("reason").to_pylist(), strict=True))
    assert sum(page.reason_counts().values()) == statuses["rejected"] + statuses.get("failed", 0)
    shown = [src for src in page.images if src.startswith("data:image/jpeg;base64,")]
    assert len(shown) == len(page.images) == info.thumbnails > 0
    assert page.tags["script"] == 0
    assert [a["data-count"] for a in page.counts if a.get("data-kind") == "reoriented"] == [
        str(sum("reoriented" in (a or "") for a in table.column("action").to_pylist()))]
    assert page.by_id("orphans") == 0
