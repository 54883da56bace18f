"""One clock and one timestamp format for what the journal and the results write (``pipeline.clock``); both
forms older journals hold (``Z`` and ``+00:00``) are read."""

from __future__ import annotations

import csv
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline import clock
from pipeline.journal import Journal
from pipeline.models import RowResult, Status
from pipeline.results import ResultChunk, write_results
from pipeline.runner.attach_prep import now_utc
from pipeline.runner.attach_route import _too_old

MOMENT = datetime(2026, 11, 29, 7, 56, 48, 195_431, tzinfo=timezone.utc)
WRITTEN = "2026-11-29T07:56:48.195Z"


@pytest.fixture
def fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "utc_now", lambda: MOMENT)


@pytest.mark.usefixtures("fixed")
def test_the_runner_and_the_journal_stamp_one_clock_in_one_format(tmp_path: Path) -> None:
    assert now_utc() == clock.now_text() == WRITTEN  # the upload and attach stamps are the journal's
    path = tmp_path / "j.sqlite"
    with Journal.open(path, workspace="ws") as j:
        j.mark_presigned("a", "ws/a1")
        j.mark_presigned("a", "ws/a2")  # the first key an orphan, stamped by the same clock
        j.record(RowResult(0, "a", Status.UPLOADED, thumbnail_key="ws/a2", uploaded_at=now_utc()))
        assert [o.recorded_at for o in j.orphans()] == [WRITTEN]
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT uploaded_at, updated_at FROM rows").fetchall() == [(WRITTEN, WRITTEN)]
        assert db.execute("SELECT v FROM meta WHERE k = 'created_at'").fetchone() == (WRITTEN,)


@pytest.mark.parametrize("text", [WRITTEN, "2026-11-29T07:56:48.195+00:00", "2026-11-29T09:56:48.195+02:00",
                                  "2026-11-29T07:56:48.195"])
def test_every_form_older_journals_hold_is_read_as_utc(text: str) -> None:
    assert clock.read_time(text) == MOMENT.replace(microsecond=195_000)
    assert clock.time_text(clock.read_time(text)) == WRITTEN


def test_a_keys_age_is_read_from_either_form(monkeypatch: pytest.MonkeyPatch) -> None:
    later = MOMENT + timedelta(hours=23, minutes=1)
    monkeypatch.setattr(clock, "utc_now", lambda: later)
    for text in (WRITTEN, "2026-11-29T07:56:48.195+00:00"):
        assert _too_old(text, clock.utc_now())
        assert not _too_old(text, later - timedelta(hours=1))
    assert _too_old("yesterday", later)  # an unreadable time cannot prove the key fresh


def test_csv_results_write_one_form_whatever_the_journal_holds(tmp_path: Path) -> None:
    rows = [RowResult(i, k, Status.UPLOADED, thumbnail_key=f"ws/{k}", uploaded_at=t)
            for i, (k, t) in enumerate([("a", "2026-11-29T07:56:48.195+00:00"), ("b", WRITTEN), ("c", None)])]
    columns = pa.record_batch({"path": ["a", "b", "c"]})
    out = tmp_path / "r.csv"
    write_results(out, columns.schema, [ResultChunk(columns, rows)])
    with out.open(newline="") as fh:
        assert [r["uploaded_at"] for r in csv.DictReader(fh)] == [WRITTEN, WRITTEN, ""]
