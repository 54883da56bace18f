"""The report as a new user sees it, in a real browser (headless Chromium, 1400x900): the headline and the first
rejected photos above the fold, the sections in order, each run drawn apart with its own caps and a legend with
colour keys, and nothing wider than the window. The results come from three real runs against the emulator.

Skipped only when Chromium is absent and ``CI`` is not set (``test_report_browser.chromium``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from browser_cdp import measure
from helpers import write_manifest
from test_report_browser import chromium

import pipeline
from pipeline.corpus import make_corpus
from pipeline.emulator import EmulatorConfig, emulator_in_thread
from pipeline.report import write_report
from pipeline.samples import make_jpeg

FOLD = 900
LAYOUT = """JSON.stringify((() => {
  const box = e => e ? e.getBoundingClientRect() : null;
  const photo = document.querySelector('#sheets figure, #sheets table.notshown tbody tr');
  return {
    headline: box(document.querySelector('#headline')).top,
    photo: photo ? box(photo).top : null,
    photoReason: document.querySelector('#sheets h3') ? document.querySelector('#sheets h3').textContent : '',
    sections: [...document.querySelectorAll('body > header, body > section')].map(e => e.id),
    runs: [...document.querySelectorAll('#throughput div.run')].map(e => e.dataset.run),
    charts: [...document.querySelectorAll('svg.rate')].map(svg => ({
      series: svg.dataset.series,
      stroke: svg.querySelector('polyline').getAttribute('stroke'),
      plotBottom: box(svg.querySelector('polyline')).bottom,
      caps: [...svg.querySelectorAll(':scope > line[data-cap]')].map(l => l.dataset.cap),
      keys: [...svg.querySelectorAll('g.legend')].map(g => ({
        name: g.dataset.series || g.dataset.cap, colour: g.querySelector('line').getAttribute('stroke'),
        keyWidth: box(g.querySelector('line')).width, top: box(g).top})),
      ticks: [...svg.querySelectorAll('text.ytick')].map(t => Number(t.textContent.replace(/,/g, ''))),
    })),
    wide: document.documentElement.scrollWidth,
  };
})())"""


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A mixed archive ingested, then grown twice and ingested again (three runs, one journal): ``(root,
    results)``; each results row's ``run_id`` is the run that last changed it."""
    root = tmp_path_factory.mktemp("archive")
    rows = [{"id": f"k{i:03d}", "path": str(p.relative_to(root))}
            for i, (p, _) in enumerate(make_corpus(root / "kinds", scale=0.25))]
    results, journal = root / "manifest.results.parquet", root / "manifest.journal.sqlite"
    (root / "plain").mkdir()
    with emulator_in_thread(EmulatorConfig()) as emu:
        for run in range(3):
            for i in range(6):
                name = f"plain/r{run}-{i}.jpg"
                make_jpeg(root / name, 320 + 16 * i, 300, seed=100 * run + i, quality=80)
                rows.append({"id": f"r{run}-{i}", "path": name})
            manifest = write_manifest(root / "manifest.csv", rows)
            pipeline.ingest(manifest, workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
                            out=results, journal=journal, progress=False, rate=0.0, confirm_rate=0.0)
    return root, results


def test_a_new_user_sees_the_answer_above_the_fold(three_runs: tuple[Path, Path], tmp_path: Path) -> None:
    root, results = three_runs
    runs = sorted(set(pq.read_table(results, columns=["run_id"]).column("run_id").to_pylist()))
    assert len(runs) == 3
    out = tmp_path / "report.html"
    write_report(results, out, root=root)
    seen = json.loads(measure(chromium(), out, tmp_path / "profile", LAYOUT))
    assert 0 <= seen["headline"] < FOLD
    assert seen["photo"] is not None and seen["photo"] < FOLD, seen["photoReason"]
    assert seen["sections"] == ["headline", "this-run", "sheets", "changed", "throughput", "totals"]
    assert seen["runs"] == runs  # three runs, three charts, oldest first
    assert [c["series"] for c in seen["charts"]] == ["uploaded"] * 3
    for chart in seen["charts"]:
        assert chart["caps"] == ["presign"]  # short runs: the status window does not bind, so it is not drawn
        keys = {k["name"]: k for k in chart["keys"]}
        assert keys.keys() == {"uploaded", "presign"}
        assert keys["uploaded"]["colour"] == chart["stroke"] and keys["presign"]["colour"] != chart["stroke"]
        assert all(k["keyWidth"] > 10 and k["top"] > chart["plotBottom"] for k in keys.values())  # under the plot
        step = chart["ticks"][1]
        assert all(t == pytest.approx(i * step) for i, t in enumerate(chart["ticks"]))
        assert f"{step:e}"[0] in "125"  # 1-2-5 steps
    assert seen["wide"] <= 1400  # paths and tables wrap: no sideways scrolling
