"""The default journal follows the endpoint and workspace, not the manifest or the DataFrame: a notebook's
``df.head(10)`` then ``df``, or nightly dated manifests, resume instead of uploading again; an older release's
journal beside the manifest is still used, and said so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import write_manifest
from structlog.testing import capture_logs

from pipeline import runner
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.journal.location import STATE_DIR_ENV, default_journal, safe_name, state_folder
from pipeline.models import ExitCode
from pipeline.python_api import ingest_async, make_settings
from pipeline.samples import make_jpeg

FAST = {"rate": 0.0, "confirm_rate": 0.0, "progress": False}
EMULATOR = pytest.mark.parametrize(
    "emulator", [EmulatorConfig(rate=0, confirm_rate=0, persons_rate=0)], indirect=True)


def _presigns(emu: Emulator) -> int:
    return int(emu.counters.snapshot(arrivals=False)["presign_calls"])


def _photos(folder: Path, n: int) -> list[dict[str, Any]]:
    folder.mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        make_jpeg(folder / f"p{i:02d}.jpg", 300, 280, seed=i, quality=70)
        rows.append({"id": f"r{i:02d}", "path": str(folder / f"p{i:02d}.jpg"), "person": f"Person {i % 4}"})
    return rows


def _opts(emu: Emulator, **kw: Any) -> dict[str, Any]:
    return {"workspace": emu.workspace, "endpoint": emu.base_url, "credentials": emu.credentials, **FAST, **kw}


def test_names_are_readable_safe_and_never_shared(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert safe_name("team-photos_2") == "team-photos_2"  # already safe: kept as is
    odd = [safe_name(w) for w in ("a/b", "a_b", "A_B", "..", "ws name", "ws:name")]
    assert len(set(odd)) == len(odd) and all("/" not in n and n not in (".", "..") for n in odd)
    assert odd[0].startswith("a_b-") and odd[1] == "a_b"  # readable, with a hash when it was changed
    plain = default_journal("https://mi.example.com/api", "ws")
    assert plain.parts[-3:] == ("journals", "mi.example.com-443", "ws.sqlite")
    assert default_journal("https://MI.example.com:443", "ws") == plain  # one service, one journal
    assert default_journal("http://127.0.0.1:8080", "ws").parent.name == "127.0.0.1-8080"
    assert str(plain).startswith(str(state_folder()))  # XDG_STATE_HOME, private to this test (conftest)
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    assert default_journal("https://mi.example.com", "ws") == tmp_path / "state/journals/mi.example.com-443/ws.sqlite"


@EMULATOR
async def test_notebook_head_then_whole_frame_uploads_each_row_once(emulator: Emulator, tmp_path: Path) -> None:
    frame = pd.DataFrame(_photos(tmp_path / "photos", 16))
    first = await ingest_async(frame.head(10), **_opts(emulator, attach=True))
    assert first.this_run.get("attached") == 10 and _presigns(emulator) == 10
    second = await ingest_async(frame, **_opts(emulator, attach=True))
    assert _presigns(emulator) == 16  # only the six new rows: no extra presign call for the first ten
    assert second.planned.get("finished") == 10 and second.this_run.get("attached") == 6
    assert first.journal_path == second.journal_path == default_journal(emulator.base_url, emulator.workspace)
    # A results file chosen by the notebook does not change which journal the frame resumes from.
    third = await ingest_async(frame, **_opts(emulator, attach=True, out=tmp_path / "mine.parquet"))
    assert _presigns(emulator) == 16 and third.journal_path == first.journal_path


@EMULATOR
async def test_dated_manifests_upload_only_the_new_rows(emulator: Emulator, tmp_path: Path) -> None:
    rows = _photos(tmp_path / "photos", 14)
    monday = write_manifest(tmp_path / "photos-2026-12-01.csv", rows[:9])
    tuesday = write_manifest(tmp_path / "photos-2026-12-02.csv", rows)
    settings = make_settings(**_opts(emulator))
    first = await runner.run_async(settings, monday)
    second = await runner.run_async(settings, tuesday)
    assert _presigns(emulator) == 14 and second.this_run == {"uploaded": 5}
    assert second.planned.get("finished") == 9
    assert second.exit_code == ExitCode.OK and second.journal_path == first.journal_path
    assert second.results_path == tmp_path / "photos-2026-12-02.results.parquet"  # results stay beside it
    assert not list(tmp_path.glob("*.journal.sqlite"))


@EMULATOR
async def test_an_older_journal_beside_the_manifest_is_used_and_named(emulator: Emulator, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "people.csv", _photos(tmp_path / "photos", 6))
    beside = tmp_path / "people.journal.sqlite"  # where an earlier release put it by default
    await runner.run_async(make_settings(**_opts(emulator, journal=beside)), manifest)
    with capture_logs() as events:
        again = await runner.run_async(make_settings(**_opts(emulator)), manifest)
    assert _presigns(emulator) == 6 and again.journal_path == beside and again.planned == {"finished": 6}
    warned = [e for e in events if e["event"] == "journal_found_beside_manifest"]
    assert len(warned) == 1 and warned[0]["journal"] == str(beside) and "--journal" in warned[0]["action"]
    started = [e for e in events if e["event"] == "run_started"]
    assert started[0]["journal"] == str(beside)


@EMULATOR
async def test_a_report_of_the_results_alone_finds_the_journal_in_the_state_folder(
        emulator: Emulator, tmp_path: Path) -> None:
    import argparse

    from pipeline.report.command import add_report_arguments, run_report
    from pipeline.report.command import default_journal as journal_of

    manifest = write_manifest(tmp_path / "photos.csv", _photos(tmp_path / "photos", 5))
    other = write_manifest(tmp_path / "other.csv", _photos(tmp_path / "more", 2))
    summary = await ingest_async(manifest, **_opts(emulator), out=tmp_path / "photos.results.csv")
    await ingest_async(other, **_opts(emulator))
    assert summary.journal_path == default_journal(emulator.base_url, emulator.workspace)
    for results in (tmp_path / "photos.results.csv", tmp_path / "other.results.parquet"):
        assert journal_of(results) == summary.journal_path  # by the run id the results name, CSV and Parquet
    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    assert run_report(parser.parse_args([str(tmp_path / "photos.results.csv"), "--no-thumbnails"])) == 0
    page = (tmp_path / "photos.results.html").read_text()
    assert 'id="journal"' in page and str(summary.journal_path) in page
    # A results file whose run no journal holds gets no journal section, never another run's journal.
    (tmp_path / "stray.csv").write_text("id,path,status,run_id\nx,x.jpg,uploaded,20200101T000000Z-abcdef\n")
    assert journal_of(tmp_path / "stray.csv") is None
