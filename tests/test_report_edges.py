"""The report's edges: photos outside the results' folder, remote photos, invisible characters, and a results
file with a huge number of distinct reasons."""

from __future__ import annotations

import argparse
import threading
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_report import T0, Page, render, results_file

from pipeline.report import ColumnNames, ReportCaps, add_report_arguments, run_report
from pipeline.report.aggregate import MAX_REASONS, TOP_REASONS, aggregate
from pipeline.report.reading import ResultsReader
from pipeline.report.sampling import BottomK
from pipeline.results import result_schema
from pipeline.samples import make_jpeg


def _rejected(paths: list[str]) -> list[dict[str, Any]]:
    return [{"id": f"row{i}", "path": p, "status": "rejected", "reason": "too_small", "detail": "d"}
            for i, p in enumerate(paths)]


def _not_shown(text: str) -> dict[str, str]:
    """Row key -> why, from the page's "photo not shown" tables."""

    class Rows(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[list[str]] = []
            self._cell: list[str] | None = None
            self._in_table = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "table" and ("class", "notshown") in attrs:
                self._in_table = True
            elif self._in_table and tag == "tr":
                self.rows.append([])
            elif self._in_table and tag == "td":
                self._cell = []

        def handle_endtag(self, tag: str) -> None:
            if tag == "table":
                self._in_table = False
            elif tag == "td" and self._cell is not None:
                self.rows[-1].append("".join(self._cell))
                self._cell = None

        def handle_data(self, data: str) -> None:
            if self._cell is not None:
                self._cell.append(data)

    parser = Rows()
    parser.feed(text)
    return {row[0]: row[-1] for row in parser.rows if row}


def test_no_photo_outside_the_results_folder_is_read_without_root(tmp_path: Path) -> None:
    here, private = tmp_path / "results", tmp_path / "private"
    here.mkdir()
    private.mkdir()
    secret = private / "secret.jpg"
    make_jpeg(secret, 300, 300, seed=2)
    make_jpeg(here / "ok.jpg", 300, 300, seed=3)
    (here / "link.jpg").symlink_to(secret)  # a symlink inside pointing out
    (here / "linked").symlink_to(private, target_is_directory=True)
    (here / "sub").mkdir()
    outside = ["../private/secret.jpg", str(secret), f"file://{secret}", f"file://localhost{secret}", "link.jpg",
               "linked/secret.jpg", "sub/../../private/secret.jpg"]
    rows = _rejected([*outside, "ok.jpg"])
    text, page = render(tmp_path, results_file(here / "r.parquet", rows))
    assert len(page.images) == 1  # ok.jpg only
    assert _not_shown(text) == {f"row{i}": "outside the root" for i in range(len(outside))}
    _, explicit = render(tmp_path, results_file(here / "r.parquet", rows), root=private)
    assert len(explicit.images) == 5  # the same photo, now inside the root; relative names resolve under it
    assert sorted(explicit.placeholders) == ["not found"] * 3  # link.jpg, linked/secret.jpg, ok.jpg


def test_remote_photos_are_compact_rows_unless_fetched(tmp_path: Path) -> None:
    rows = _rejected(["s3://bucket/a.jpg", "gs://bucket/b.jpg", "https://example.invalid/c.jpg?X-Sig=abc"])
    text, page = render(tmp_path, results_file(tmp_path / "r.parquet", rows))
    assert page.images == [] and 'class="ph"' not in text and "<figure>" not in text
    assert _not_shown(text) == {"row0": "remote source, not fetched", "row1": "remote source, not fetched",
                                "row2": "remote source, not fetched"}


class _Photos(BaseHTTPRequestHandler):
    """Serves /a.jpg (``photo``) and 404 for anything else, counting what was asked (set by ``photo_site``)."""

    photo = b""
    asked: ClassVar[Counter[str]] = Counter()

    def do_GET(self) -> None:
        type(self).asked[self.path] += 1
        body = self.photo if self.path == "/a.jpg" else b"no such photo"
        self.send_response(200 if self.path == "/a.jpg" else 404)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # the base class's parameter name
        """Quiet: the test reads the counters, not the server's log."""


@pytest.fixture
def photo_site() -> Iterator[str]:
    _Photos.photo = make_jpeg(None, 300, 200, seed=5)
    _Photos.asked = Counter()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Photos)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_fetch_thumbnails_fetches_remote_photos_through_the_fetchers_rules(tmp_path: Path, photo_site: str) -> None:
    rows = _rejected([f"{photo_site}/a.jpg", f"{photo_site}/missing.jpg", "http://169.254.169.254/latest/x.jpg"])
    results = results_file(tmp_path / "r.parquet", rows)
    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    assert run_report(parser.parse_args([str(results), "-o", str(tmp_path / "off.html")])) == 0
    assert _Photos.asked == Counter()  # not asked: nothing fetched
    assert run_report(parser.parse_args([str(results), "-o", str(tmp_path / "on.html"), "--fetch-thumbnails"])) == 0
    text = (tmp_path / "on.html").read_text(encoding="utf-8")
    assert len(Page(text).images) == 1
    assert _not_shown(text) == {"row1": "not fetched: not_found", "row2": "not fetched: unsupported_source"}
    assert _Photos.asked == Counter({"/a.jpg": 1, "/missing.jpg": 1})  # the metadata address never connected


HIDDEN = {"\u202e": "U+202E", "\u200b": "U+200B", "\u2066": "U+2066", "\ufeff": "U+FEFF", "\n": "U+000A",
          "\u200d": "U+200D", "\u2029": "U+2029"}


class _Visible(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.feed(text)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def test_bidi_and_zero_width_characters_are_shown_as_markers_everywhere(tmp_path: Path) -> None:
    rows = [{"id": "\u202egnp.exe", "path": "a\u200bb.jpg", "status": "rejected", "reason": "bad\u2066reason",
             "detail": "line\nbreak\ufeff"},
            {"id": "x", "path": "x.jpg", "status": "uploaded\u200d", "uploaded_at": T0, "action": "resized\u2029",
             "person_id": "person\u202e1", "attached_at": T0}]
    text, page = render(tmp_path, results_file(tmp_path / "r\u202e.parquet", rows))
    for raw in HIDDEN:
        if raw != "\n":
            assert raw not in text, HIDDEN[raw]
    assert '<span class="cc">&lt;U+202E&gt;</span>gnp.exe' in text  # styled, not mistaken for the file's text
    assert '<tspan class="cc">&lt;U+2066&gt;</tspan>' in text  # the reason's bar label in the chart
    visible = "".join(_Visible(text).parts)
    for shown in ("<U+202E>gnp.exe", "a<U+200B>b.jpg", "bad<U+2066>reason", "line<U+000A>break<U+FEFF>",
                  "uploaded<U+200D>", "person<U+202E>1", "r<U+202E>.parquet"):
        assert shown in visible, shown
    assert page.reason_counts() == {("rejected", "bad<U+2066>reason"): 1}
    assert "<script" not in text  # escaping stays


def _many_reasons(path: Path, n: int) -> Path:
    """``n`` rejected rows: every tenth "too_small", each other one a reason of its own."""
    schema = result_schema(pa.schema([pa.field("id", pa.string()), pa.field("path", pa.string())]), csv=False)
    values = {"id": [f"r{i}" for i in range(n)], "path": [f"{i}.jpg" for i in range(n)],
              "status": ["rejected"] * n, "reason": ["too_small" if i % 10 == 0 else f"odd_{i}" for i in range(n)]}
    columns = [pa.array(values[f.name], f.type) if f.name in values else pa.nulls(n, f.type) for f in schema]
    pq.write_table(pa.Table.from_arrays(columns, schema=schema), path, row_group_size=65_536)
    return path


def test_200k_distinct_reasons_are_grouped_once_and_folded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 200_000
    results = _many_reasons(tmp_path / "r.parquet", n)
    calls: Counter[str] = Counter()
    offer, batches = BottomK.offer, ResultsReader.batches

    def counted_offer(self: BottomK[Any], batch: pa.RecordBatch, build: Any) -> None:
        calls["offers"] += 1
        calls["rows offered"] += batch.num_rows
        offer(self, batch, build)

    def counted_batches(self: ResultsReader) -> Iterator[pa.RecordBatch]:
        calls["reads"] += 1
        for batch in batches(self):
            calls["batches"] += 1
            yield batch

    monkeypatch.setattr(BottomK, "offer", counted_offer)
    monkeypatch.setattr(ResultsReader, "batches", counted_batches)
    data = aggregate(results, names=ColumnNames(), per_section=2, caps=ReportCaps())
    assert calls["reads"] == 1 and calls["rows offered"] == n  # one read; each row offered once
    assert calls["offers"] <= calls["batches"] * (MAX_REASONS + 1)  # per batch: one offer per sheet, not per reason
    assert len(data.reasons) == TOP_REASONS and data.reasons[0].reason == "too_small"
    assert data.reasons[0].count == n // 10
    assert data.other_reason_rows == n - n // 10 - (TOP_REASONS - 1)
    assert sum(count for _, count, _ in data.samples) == n and len(data.samples) == MAX_REASONS + 1
    text, page = render(tmp_path, results, per_section=1, thumbnails=False)
    assert len(page.reason_counts()) == TOP_REASONS
    assert page.by_id("other-reason-rows") == data.other_reason_rows
    assert page.by_id("other-reasons") == data.other_reasons >= 9_000
    assert "other reasons" in text and len(text.encode()) < 2_000_000
