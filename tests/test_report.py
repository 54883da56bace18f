"""The run report from synthetic results files: numbers, escaping, bounds, thumbnails, sources, sections."""

from __future__ import annotations

import argparse
import base64
import io
from collections import Counter
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.errors import ConfigError
from pipeline.report import ColumnNames, ReportCaps, add_report_arguments, run_report, write_report
from pipeline.report.aggregate import MAX_REASONS, aggregate
from pipeline.report.command import default_journal
from pipeline.results import result_schema
from pipeline.samples import GPS_MARKER, MAKE_MARKER, make_jpeg, make_oriented_jpeg

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)
HOSTILE = '<script>alert("x")</script>\'"></svg><img src=x onerror=alert(1)>'


def results_file(path: Path, rows: list[dict[str, Any]], *, extra: tuple[str, ...] = ()) -> Path:
    """Write ``rows`` as a results manifest with input columns ``id``, ``path`` (+ ``extra``) the way
    ``pipeline.results`` lays it out; missing results values are null."""
    inputs = pa.schema([pa.field(c, pa.string()) for c in ("id", "path", *extra)])
    csv = path.suffix == ".csv"
    schema = result_schema(inputs, csv=csv)
    for name in ("person_id", "attached_at"):  # the results have them since --attach; older files did not
        if any(name in r for r in rows) and name not in schema.names:
            schema = schema.append(pa.field(name, pa.string() if csv or name == "person_id"
                                            else pa.timestamp("us", tz="UTC")))
    columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
    for name in ("uploaded_at", "attached_at"):
        if csv and name in columns:
            columns[name] = [v.isoformat() if v is not None else None for v in columns[name]]
    table = pa.Table.from_pydict(columns, schema=schema)
    if csv:
        pcsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


class Page(HTMLParser):
    """The parts of a report page tests look at."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.counts: list[dict[str, str]] = []
        self.images: list[str] = []
        self.placeholders: list[str] = []
        self._in_ph = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        a = {k: v or "" for k, v in attrs}
        if "data-count" in a:
            self.counts.append(a)
        if tag == "img":
            self.images.append(a.get("src", ""))
        # A photo not shown is a row of the sheet's "not shown" table; its why cell says why.
        self._in_ph = tag == "td" and a.get("class") == "why"

    def handle_data(self, data: str) -> None:
        if self._in_ph:
            self.placeholders.append(data)
            self._in_ph = False

    def status_counts(self) -> dict[str, int]:
        return {a["data-status"]: int(a["data-count"]) for a in self.counts
                if "data-status" in a and "data-reason" not in a}

    def reason_counts(self) -> dict[tuple[str, str], int]:
        return {(a["data-status"], a["data-reason"]): int(a["data-count"]) for a in self.counts
                if "data-status" in a and "data-reason" in a}

    def by_id(self, ident: str) -> int:
        return next(int(a["data-count"]) for a in self.counts if a.get("id") == ident)


def mixed_rows(n: int) -> list[dict[str, Any]]:
    statuses = ["uploaded", "uploaded", "rejected", "failed", "uploaded", "rejected"]
    reasons = {"rejected": ["too_small", "corrupt", "unsupported_format"], "failed": ["upload_failed"]}
    rows = []
    for i in range(n):
        status = statuses[i % len(statuses)]
        row: dict[str, Any] = {"id": f"r{i}", "path": f"photos/{i}.jpg", "status": status}
        if status in reasons:
            row["reason"] = reasons[status][i % len(reasons[status])]
            row["detail"] = f"detail {i}"
        else:
            row.update(action="resized" if i % 4 == 0 else "passthrough", width=800, height=600, bytes=90_000,
                       uploaded_at=T0 + timedelta(seconds=i // 40), thumbnail_key=f"ws/k{i}.jpg")
        rows.append(row)
    return rows


def render(tmp_path: Path, results: Path, **options: Any) -> tuple[str, Page]:
    out = tmp_path / "report.html"
    write_report(results, out, **options)
    text = out.read_text(encoding="utf-8")
    return text, Page(text)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_totals_by_status_and_reason_match_the_file(tmp_path: Path, suffix: str) -> None:
    rows = mixed_rows(1_000)
    results = results_file(tmp_path / f"results{suffix}", rows)
    _, page = render(tmp_path, results)
    assert page.status_counts() == Counter(r["status"] for r in rows)
    assert page.reason_counts() == Counter((r["status"], r["reason"]) for r in rows if "reason" in r)
    assert page.by_id("total-rows") == 1_000
    assert page.tags["script"] == 0


def test_throughput_counts_every_timed_row_and_stays_bounded_over_a_long_gap(tmp_path: Path) -> None:
    rows = mixed_rows(600)
    rows[1]["uploaded_at"] = T0 + timedelta(days=365)  # a row from a run a year later
    data = aggregate(results_file(tmp_path / "r.parquet", rows), names=ColumnNames(), per_section=5,
                     caps=ReportCaps())
    (run,) = data.runs  # no run_id column: one run
    series = run.uploads
    assert series is not None and run.run_id is None
    assert sum(series.counts) == sum(1 for r in rows if r.get("uploaded_at") is not None)
    assert series.start == T0.timestamp()
    assert len(series.counts) <= 4_000


def test_data_from_the_file_is_escaped_everywhere(tmp_path: Path) -> None:
    rows = [{"id": HOSTILE, HOSTILE: HOSTILE, "path": HOSTILE, "status": "rejected", "reason": HOSTILE,
             "detail": HOSTILE},
            {"id": "ok", HOSTILE: "p.jpg", "path": "p.jpg", "status": "uploaded", "action": HOSTILE,
             "uploaded_at": T0}]
    results = results_file(tmp_path / "r.parquet", rows, extra=(HOSTILE,))
    text, page = render(tmp_path, results, columns=ColumnNames(path=HOSTILE))
    assert page.tags["script"] == 0
    assert all(src.startswith("data:") for src in page.images)
    for raw in ("<script", "</svg><img", "<img src=x", "'\"></svg>"):
        assert raw not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert page.reason_counts() == {("rejected", HOSTILE): 1}  # the parser reads back the exact string


def test_contact_sheets_show_a_bounded_uniform_sample(tmp_path: Path) -> None:
    rows = [{"id": f"r{i}", "path": f"{i}.jpg", "status": "rejected", "reason": "too_small", "detail": "d"}
            for i in range(20_000)]
    data = aggregate(results_file(tmp_path / "r.parquet", rows), names=ColumnNames(), per_section=12,
                     caps=ReportCaps())
    ((reason, count, sample),) = data.samples
    assert (reason, count, len(sample)) == ("too_small", 20_000, 12)
    picked = sorted(int(r.key[1:]) for r in sample)
    assert len(set(picked)) == 12
    assert picked[-1] > 10_000 and picked[0] < 10_000  # drawn from the whole file, not its first rows
    _, page = render(tmp_path, results_file(tmp_path / "r.parquet", rows), per_section=12)
    assert len(page.placeholders) == 12  # the photos do not exist: one placeholder per sampled row


def test_page_stays_small_with_many_reasons_and_long_texts(tmp_path: Path) -> None:
    long = "x" * 20_000
    rows = [{"id": f"{i}{long}", "path": f"{i}{long}", "status": "failed", "reason": f"reason_{i % 300}",
             "detail": long} for i in range(3_000)]
    text, page = render(tmp_path, results_file(tmp_path / "r.parquet", rows))
    assert len(text.encode()) < 5_000_000
    sheets = [a for a in page.counts if a.get("id", "").startswith("reason-")]
    assert len(sheets) == MAX_REASONS + 1  # the rest share one "other reasons" sheet
    assert sum(int(a["data-count"]) for a in sheets) == 3_000


def test_thumbnails_carry_pixels_only_and_can_be_left_out(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    make_jpeg(photos / "gps.jpg", 300, 200, exif_gps=True, xmp=True, seed=1)
    rows = [{"id": "a", "path": "photos/gps.jpg", "status": "rejected", "reason": "too_small", "detail": "d"}]
    results = results_file(tmp_path / "r.parquet", rows)
    _, page = render(tmp_path, results)
    (src,) = page.images
    data = base64.b64decode(src.split(",", 1)[1])
    assert GPS_MARKER not in data and MAKE_MARKER.encode() not in data and b"Exif" not in data
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG" and max(im.size) <= 128
        assert not {"exif", "icc_profile", "xmp", "comment"} & set(im.info)
    _, bare = render(tmp_path, results, thumbnails=False)
    assert bare.images == [] and bare.placeholders == ["photos left out"]


def test_sources_outside_the_root_or_remote_are_never_read(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    make_jpeg(outside / "secret.jpg", 300, 300, seed=2)
    make_jpeg(root / "ok.jpg", 300, 300, seed=3)
    (root / "link.jpg").symlink_to(outside / "secret.jpg")
    paths = ["../outside/secret.jpg", "link.jpg", str(outside / "secret.jpg"), "s3://bucket/a.jpg",
             "https://example.com/a.jpg", f"file://{root / 'ok.jpg'}", "ok.jpg"]
    rows = [{"id": str(i), "path": p, "status": "rejected", "reason": "too_small", "detail": "d"}
            for i, p in enumerate(paths)]
    _, page = render(tmp_path, results_file(tmp_path / "r.parquet", rows), root=root)
    assert len(page.images) == 2
    assert sorted(page.placeholders) == sorted(["outside the root"] * 3 + ["remote source, not fetched"] * 2)
    assert "https://example.com" not in "".join(page.images)


def test_a_remote_root_is_never_fetched_nor_read_locally(tmp_path: Path) -> None:
    make_jpeg(tmp_path / "a.jpg", 300, 300, seed=2)  # same name as the remote photo: must not stand in for it
    paths = ["a.jpg", str(tmp_path / "a.jpg"), f"file://{tmp_path / 'a.jpg'}", "s3://bucket/p/a.jpg"]
    rows = [{"id": str(i), "path": p, "status": "rejected", "reason": "too_small", "detail": "d"}
            for i, p in enumerate(paths)]
    results = results_file(tmp_path / "r.parquet", rows)
    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    argv = [str(results), "--root", "s3://bucket//p", "-o", str(tmp_path / "x.html")]
    assert run_report(parser.parse_args(argv)) == 0
    page = Page((tmp_path / "x.html").read_text(encoding="utf-8"))
    assert page.images == []
    assert sorted(page.placeholders) == sorted(["remote source, not fetched"] * 2 + ["outside the root"] * 2)


def test_changed_photos_show_stored_pixels_before_and_oriented_after(tmp_path: Path) -> None:
    make_oriented_jpeg(tmp_path / "rot.jpg", 400, 300, 6, seed=4)
    rows = [{"id": "a", "path": "rot.jpg", "status": "uploaded", "action": "reoriented", "width": 300,
             "height": 400, "bytes": 1000, "uploaded_at": T0}]
    _, page = render(tmp_path, results_file(tmp_path / "r.parquet", rows))
    before, after = (Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))) for s in page.images)
    assert before.width < before.height and after.width > after.height  # stored sideways, shown upright
    assert [a["data-count"] for a in page.counts if a.get("data-kind") == "reoriented"] == ["1"]


def test_dry_run_estimates_time_at_the_caps_and_the_rejected_share(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = []
    for i in range(600):
        dup = f"r{i - 1}" if i >= 500 else None
        rows.append({"id": f"r{i}", "path": f"{i}.jpg", "status": "skipped", "duplicate_of": dup,
                     "person": f"p{i % 3}" if i < 450 else None})
    rows += [{"id": f"x{i}", "path": f"x{i}.jpg", "status": "rejected", "reason": "too_small"} for i in range(150)]
    results = results_file(tmp_path / "r.parquet", rows, extra=("person",))
    caps = ReportCaps(presign_per_s=50.0, status_per_min=1000.0, attach_per_s=0.1)
    data = aggregate(results, names=ColumnNames(), per_section=4, caps=caps)
    est = data.dry_run
    assert est is not None
    assert (est.to_upload, est.rejected, est.total) == (500, 150, 750)
    assert (est.presign_s, est.status_s) == (10.0, 10.0)  # 500 status calls fit the first 60 s window
    assert (est.persons, est.attach_calls, est.attach_s) == (3, 6, 60.0)  # 150 rows each: 2 calls per person
    assert est.seconds == 60.0
    text, page = render(tmp_path, results, caps=ReportCaps(presign_per_s=50.0, status_checks=False))
    assert page.by_id("to-upload") == 500 and page.by_id("rejected-share") == 150
    assert '<strong id="estimate">10 s</strong>' in text and "20.0 %" in text


def test_persons_section_only_when_the_columns_exist(tmp_path: Path) -> None:
    plain = results_file(tmp_path / "plain.parquet", mixed_rows(30))
    assert 'id="persons"' not in render(tmp_path, plain)[0]
    rows = []
    for i in range(120):
        person = "p-big" if i < 105 else f"p{i}"
        attached = T0 + timedelta(seconds=i) if i < 115 else None
        rows.append({"id": f"r{i}", "path": f"{i}.jpg", "status": "uploaded", "uploaded_at": T0,
                     "person_id": person if attached else None, "attached_at": attached,
                     "input_person_id": "p-big" if person == "p-big" else None})
    results = results_file(tmp_path / "persons.parquet", rows, extra=("input_person_id",))
    text, page = render(tmp_path, results)
    assert page.by_id("persons-total") == 11 and page.by_id("thumbnails-attached") == 115
    assert page.by_id("persons-by-id") == 1 and page.by_id("persons-by-name") == 10
    assert "persons cap (10 calls/s) counts calls" in text  # said, not drawn against attached rows/s


def test_journal_section_reads_a_real_journal_without_changing_it(tmp_path: Path) -> None:
    from pipeline.journal import Journal

    results = results_file(tmp_path / "m.results.parquet", mixed_rows(12))
    journal_path = tmp_path / "m.journal.sqlite"
    with Journal.open(journal_path, workspace='ws-"<b>'):
        held, _ = render(tmp_path, results, journal=journal_path)  # a running ingest holds it: read at once
    assert "ws-&quot;&lt;b&gt;" in held and "in use" not in held
    before = journal_path.read_bytes()
    text, _ = render(tmp_path, results, journal=journal_path)
    assert "ws-&quot;&lt;b&gt;" in text and journal_path.read_bytes() == before
    assert default_journal(results) == journal_path
    missing, _ = render(tmp_path, results, journal=tmp_path / "none.sqlite")
    assert "does not exist" in missing


def test_command_writes_beside_the_results_and_refuses_bad_input(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    results = results_file(tmp_path / "m.results.csv", mixed_rows(40))
    assert run_report(parser.parse_args([str(results), "--no-thumbnails", "--per-section", "3"])) == 0
    assert Page((tmp_path / "m.results.html").read_text()).by_id("total-rows") == 40
    with pytest.raises(ConfigError, match="per-section"):
        run_report(parser.parse_args([str(results), "--per-section", "0"]))
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with pytest.raises(ConfigError, match="cannot be read"):
        write_report(tmp_path / "x.parquet", tmp_path / "x.html")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("id,path\n1,a.jpg\n")
    with pytest.raises(ConfigError, match="no status column"):
        write_report(manifest, tmp_path / "m.html")
