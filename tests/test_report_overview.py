"""The report answers at a glance: the headline, reasons with their meaning, runs drawn apart with their own
caps, round ticks and legend keys, the dry run's estimate for short runs, and the small things (plurals, sizes,
paths that wrap at separators, long tables folded)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from test_report import render, results_file

from pipeline.report import ColumnNames, ReportCaps
from pipeline.report.aggregate import aggregate
from pipeline.report.charts import nice_ticks
from pipeline.report.markup import path_html, plural, size_text
from pipeline.report.reasons import REASONS

REPO = Path(__file__).resolve().parents[1]
NIGHTS = [datetime(2026, 11, d, 22, 0, tzinfo=timezone.utc) for d in (1, 2, 3)]


def run_id(start: datetime, suffix: str) -> str:
    return start.strftime("%Y%m%dT%H%M%SZ") + "-" + suffix


def three_nights(per_night: int = 100) -> list[dict[str, Any]]:
    """Rows uploaded on three nights, 20 rows a second, by three runs; the last run also rejects and attaches
    (one row it attaches was uploaded on the first night)."""
    rows: list[dict[str, Any]] = []
    for night, start in enumerate(NIGHTS):
        rid = run_id(start, f"00000{night}")
        for i in range(per_night):
            stamp = start + timedelta(seconds=2 + i / 20)
            rows.append({"id": f"n{night}-{i}", "path": f"photos/{night}/{i}.jpg", "status": "uploaded",
                         "uploaded_at": stamp, "bytes": 200, "run_id": rid, "this_run": "unchanged"})
    latest = run_id(NIGHTS[2], "000002")
    for row in rows[200:]:
        row["this_run"] = "uploaded"
    rows[0].update(status="attached", attached_at=NIGHTS[2] + timedelta(seconds=9), person_id="p-1",
                   person="Ann Lee", run_id=latest, this_run="attached")
    for i in range(3):
        rows.append({"id": f"bad{i}", "path": f"photos/bad{i}.jpg", "status": "rejected", "reason": "too_small",
                     "detail": "100x100 px", "bytes": 200, "run_id": latest, "this_run": "rejected"})
    return rows


class Svg(HTMLParser):
    """The rate charts of a page: per chart its series, the caps drawn, the legend keys' colours, the y ticks."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.charts: list[dict[str, Any]] = []
        self.runs: list[str] = []
        self._tick = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "div" and a.get("class") == "run":
            self.runs.append(a["data-run"])
        if tag == "svg" and "rate" in a.get("class", ""):
            self.charts.append({"series": a["data-series"], "caps": [], "stroke": "", "keys": [], "ticks": []})
        elif not self.charts:
            return
        chart = self.charts[-1]
        if tag == "polyline":
            chart["stroke"] = a["stroke"]
        elif tag == "line" and "data-cap" in a:
            chart["caps"].append(a["data-cap"])
        elif tag == "g" and a.get("class") == "legend":
            chart["keys"].append([a.get("data-series") or a.get("data-cap")])
        elif tag == "line" and chart["keys"] and len(chart["keys"][-1]) == 1:
            chart["keys"][-1].append(a["stroke"])
        self._tick = tag == "text" and a.get("class") == "ytick"

    def handle_data(self, data: str) -> None:
        if self._tick:
            self.charts[-1]["ticks"].append(float(data.replace(",", "")))
            self._tick = False


def _readme_reasons() -> dict[str, str]:
    text = (REPO / "docs" / "reference.md").read_text(encoding="utf-8")
    table = text.split("### Reason codes", 1)[1].split("\n## ", 1)[0]
    found = {}
    for line in table.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 3 and cells[0].startswith("`"):
            found[cells[0].strip("`")] = cells[2].replace("`", "").replace("\\|", "|")
    return found


def test_every_reason_code_the_pipeline_writes_has_readmes_meaning() -> None:
    readme = _readme_reasons()
    assert len(readme) >= 20
    source = "".join(p.read_text(encoding="utf-8") for p in (REPO / "pipeline").rglob("*.py")
                     if "report" not in p.parts)
    produced = {code for code in readme if f'"{code}"' in source}  # a code the pipeline writes is a literal
    assert len(produced) >= 20
    for code in produced:
        assert REASONS.get(code) == readme[code], code  # README's meaning, word for word
    assert set(REASONS) <= set(readme)  # no meaning the README does not give


def test_headline_comes_first_with_rows_runs_when_duration_speed_and_outcome(tmp_path: Path) -> None:
    rows = three_nights()
    rows.append({"id": "late", "path": "late.jpg", "status": "pending", "reason": "interrupted",
                 "run_id": run_id(NIGHTS[2], "000002"), "this_run": "interrupted"})
    text, page = render(tmp_path, results_file(tmp_path / "r.parquet", rows, extra=("person",)))
    order = re.findall(r'<(?:section|header) id="([a-z-]+)"', text)
    assert order == ["headline", "this-run", "sheets", "throughput", "persons", "totals"]
    assert page.by_id("headline-rows") == 304 and page.by_id("headline-runs") == 3
    assert page.by_id("headline-interrupted") == 1
    headline = text.split('id="headline"', 1)[1].split("</header>", 1)[0]
    assert "2026-11-01 22:00:00 to 2026-11-03 22:00:09" in headline  # UTC, first start to last stamp
    assert "23 s over 3 runs" in headline  # 6.95 + 6.95 + 9 s, each run apart: not the two days between them
    assert "13.3 rows/s" in headline  # 304 rows / 22.9 s
    assert "300 of 304 rows are in the service (1 attached to persons); 3 rejected" in headline
    assert "1 row not finished" in headline and "1 interrupted" in headline
    assert [a["data-count"] for a in page.counts if a.get("data-this-run") == "unchanged"] == ["199"]


def test_reasons_are_shown_with_their_meaning(tmp_path: Path) -> None:
    text, _ = render(tmp_path, results_file(tmp_path / "r.parquet", three_nights()))
    sheet = text.split('id="reason-0"', 1)[1].split("</h3>", 1)[0]
    assert REASONS["too_small"] in sheet and "3 rows, all shown" in sheet
    table = text.split('id="reasons"', 1)[1]
    assert f'<td class="meaning">{REASONS["too_small"]}</td>' in table


def test_three_runs_are_drawn_apart_each_with_its_own_axis(tmp_path: Path) -> None:
    results = results_file(tmp_path / "r.parquet", three_nights(), extra=("person",))
    data = aggregate(results, names=ColumnNames(), per_section=4, caps=ReportCaps())
    assert [r.run_id for r in data.runs] == [run_id(n, f"00000{i}") for i, n in enumerate(NIGHTS)]
    for run, night in zip(data.runs, NIGHTS, strict=True):
        assert run.uploads is not None and run.start == night.timestamp()
        assert len(run.uploads.counts) < 60  # its own seconds, not two days of zeros
    first, _, last = data.runs
    assert first.uploads is not None and sum(first.uploads.counts) == 99  # its row 0 is the last run's now
    assert last.uploads is not None and sum(last.uploads.counts) == 100  # the first night's stamp left out
    assert last.attaches is not None and sum(last.attaches.counts) == 1
    text, _ = render(tmp_path, results)
    assert Svg(text).runs == [r.run_id for r in data.runs]


def test_each_cap_is_drawn_only_against_its_own_series_with_legend_keys_and_round_ticks(tmp_path: Path) -> None:
    rows = three_nights()
    for i in range(3_000):  # a long last run: the status window's average binds too
        rows.append({"id": f"long{i}", "path": f"l{i}.jpg", "status": "uploaded", "run_id": run_id(NIGHTS[2], "000002"),
                     "uploaded_at": NIGHTS[2] + timedelta(seconds=10 + i / 16), "this_run": "uploaded"})
    text, _ = render(tmp_path, results_file(tmp_path / "r.parquet", rows, extra=("person",)),
                     caps=ReportCaps(presign_per_s=50.0, status_per_min=1000.0, attach_per_s=10.0))
    charts = Svg(text).charts
    assert [c["series"] for c in charts] == ["uploaded", "uploaded", "uploaded", "attached"]
    assert [c["caps"] for c in charts] == [["presign"], ["presign"], ["presign", "status"], []]
    assert "status cap 1,000 calls/min = 16.7/s on average (one per upload)" in text
    for chart in charts:
        keys = dict(chart["keys"])
        assert keys[chart["series"]] == chart["stroke"]  # the series' key has the line's colour
        assert set(keys) == {chart["series"], *chart["caps"]}
        ticks = chart["ticks"]
        step = ticks[1] - ticks[0]
        assert ticks[0] == 0 and step / 10 ** round(__import__("math").log10(step) // 1) in (1, 2, 5)
        assert all(abs(t - i * step) < 1e-9 for i, t in enumerate(ticks))


@pytest.mark.parametrize(("peak", "ticks"), [(55, [0, 20, 40, 60]), (28, [0, 10, 20, 30]), (57.2, [0, 20, 40, 60]),
                                             (0.3, [0, 0.1, 0.2, 0.3]), (16.7, [0, 5, 10, 15, 20])])
def test_ticks_step_by_one_two_or_five(peak: float, ticks: list[float]) -> None:
    assert nice_ticks(peak) == ticks


@pytest.mark.parametrize(("photos", "seconds"), [(310, 6.2), (1_000, 20.0), (10_000, 560.0), (100_000, 5960.0)])
def test_dry_run_estimate_uses_the_whole_status_window(tmp_path: Path, photos: int, seconds: float) -> None:
    rows = [{"id": f"r{i}", "path": f"{i}.jpg", "status": "skipped"} for i in range(photos)]
    data = aggregate(results_file(tmp_path / "d.parquet", rows), names=ColumnNames(), per_section=1,
                     caps=ReportCaps(presign_per_s=50.0, status_per_min=1000.0))
    assert data.dry_run is not None and data.dry_run.seconds == pytest.approx(seconds)


def test_plurals_sizes_paths_and_folded_tables(tmp_path: Path) -> None:
    assert (plural(1, "row"), plural(2, "row"), plural(1_200, "row")) == ("1 row", "2 rows", "1,200 rows")
    assert [size_text(n) for n in (0, 200, 999, 1_000, 14_200, 3_100_000)] == ["0 B", "200 B", "999 B", "1 kB",
                                                                              "14.2 kB", "3.1 MB"]
    assert path_html("archive/2019_summer/IMG_0001.jpg") == "archive/<wbr>2019_summer/<wbr>IMG_0001.jpg"
    rows = [{"id": "only", "path": "deep/folder/name.jpg", "status": "rejected", "reason": "corrupt", "bytes": 200}]
    text, _ = render(tmp_path, results_file(tmp_path / "one.parquet", rows))
    assert "1 row<" in text and "1 rows" not in text and "sampled" not in text
    assert "deep/<wbr>folder/<wbr>name.jpg" in text and "overflow-wrap:anywhere" not in text
    many = [{"id": f"r{i}", "path": f"{i}.jpg", "status": "failed", "reason": f"reason_{i}"} for i in range(14)]
    text, _ = render(tmp_path, results_file(tmp_path / "many.parquet", many))
    table = text.split('id="reasons"', 1)[1]
    assert "<details" in table and "4 more reasons" in table
    assert table.split("<details", 1)[0].count('data-reason="') == 10


def test_persons_are_listed_with_their_names_folded_after_ten(tmp_path: Path) -> None:
    t0 = NIGHTS[0]
    rows = [{"id": f"r{i}", "path": f"{i}.jpg", "status": "attached", "uploaded_at": t0, "person": f"Person {i % 12}",
             "person_id": f"pid-{i % 12}", "attached_at": t0 + timedelta(seconds=1)} for i in range(60)]
    text, _ = render(tmp_path, results_file(tmp_path / "p.parquet", rows, extra=("person",)))
    top = text.split('id="top-persons"', 1)[1].split("</details>", 1)[0]
    assert "<td>Person 0</td><td><code>pid-0</code></td>" in top and "2 more persons" in top
