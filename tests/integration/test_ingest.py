"""End-to-end runs against the emulator on loopback: every row one state, exactly one PUT per upload."""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import write_manifest

from pipeline import runner
from pipeline.config import Credentials, Settings
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.images import prepare
from pipeline.models import ImagePolicy, Prepared

pytestmark = pytest.mark.parametrize("emulator", [EmulatorConfig(rate=0, confirm_rate=0)], indirect=True)

SettingsFor = Callable[..., Settings]
TERMINAL = {"uploaded", "rejected", "failed"}


async def test_mixed_manifest_every_row_one_state_and_one_put(
    emulator: Emulator, settings_for: SettingsFor, archive: tuple[Path, list[tuple[str, str]]]
) -> None:
    manifest, expected = archive
    summary = await runner.run_async(settings_for(emulator), manifest)
    table = pq.read_table(summary.results_path).to_pylist()

    assert [r["id"] for r in table] == [f"r{i:04d}" for i in range(len(expected))]
    assert all(r["team"] == f"t{i % 3}" for i, r in enumerate(table))
    for row, (_path, outcome) in zip(table, expected, strict=True):
        assert row["status"] in TERMINAL
        if row["status"] == "uploaded":
            assert row["action"] == outcome, row
        else:
            assert row["status"] == "rejected" and row["reason"] == outcome, row

    uploaded = [r for r in table if r["status"] == "uploaded"]
    counters = emulator.counters.snapshot(arrivals=False)
    assert summary.exit_code == 0
    assert len({r["thumbnail_key"] for r in uploaded}) == len(uploaded)
    assert counters["puts_ok"] == counters["put_calls"] == counters["presign_calls"] == len(uploaded)
    assert set(counters["puts_per_key"].values()) == {1}
    # The uploaded bytes are exactly what prepare() produces for the source.
    base = manifest.parent
    for row in uploaded:
        prepared = prepare(base / row["path"], ImagePolicy())
        assert isinstance(prepared, Prepared)
        obj = emulator.objects[row["thumbnail_key"]]
        assert obj.sha256 == hashlib.sha256(prepared.data).hexdigest()
        assert row["bytes"] == len(prepared.data) and row["source_sha256"] == prepared.source_sha256
    # Duplicated sources are reported against the first row that had them.
    # Rows 192/195 and 193/194 share content; whichever of a pair was prepared first is the original.
    dup_of = {r["id"]: r["duplicate_of"] for r in table if r["duplicate_of"]}
    assert len(dup_of) == 2
    pairs = [{"r0192", "r0195"}, {"r0193", "r0194"}]
    assert all({row, first} in pairs for row, first in dup_of.items())
    assert summary.by_status == dict(Counter(r["status"] for r in table))


async def test_rerun_skips_finished_rows_without_api_calls(
    emulator: Emulator, settings_for: SettingsFor, archive: tuple[Path, list[tuple[str, str]]]
) -> None:
    manifest, _ = archive
    first = await runner.run_async(settings_for(emulator), manifest)
    before = emulator.counters.snapshot(arrivals=False)
    second = await runner.run_async(settings_for(emulator), manifest)
    after = emulator.counters.snapshot(arrivals=False)
    assert (after["presign_calls"], after["put_calls"], after["status_calls"]) == (
        before["presign_calls"], before["put_calls"], before["status_calls"])
    assert second.by_status == first.by_status
    assert pq.read_table(second.results_path).equals(pq.read_table(first.results_path))


async def test_dry_run_calls_nothing_and_writes_skipped(
    emulator: Emulator, settings_for: SettingsFor, archive: tuple[Path, list[tuple[str, str]]], tmp_path: Path
) -> None:
    manifest, expected = archive
    summary = await runner.run_async(settings_for(emulator, dry_run=True), manifest)
    rows = pq.read_table(summary.results_path).to_pylist()
    assert emulator.counters.snapshot(arrivals=False)["presign_calls"] == 0
    assert not (tmp_path / "journal.sqlite").exists()
    n_ok = sum(1 for _, outcome in expected if outcome.startswith(("passthrough", "reoriented", "converted")))
    assert Counter(r["status"] for r in rows)["skipped"] == n_ok
    assert all(r["width"] and r["height"] for r in rows if r["status"] == "skipped")
    assert summary.exit_code == 0


async def test_dedupe_uploads_identical_content_once(
    emulator: Emulator, settings_for: SettingsFor, tmp_path: Path
) -> None:
    from pipeline.samples import make_jpeg

    make_jpeg(tmp_path / "a.jpg", 400, 300, seed=1)
    make_jpeg(tmp_path / "b.jpg", 400, 300, seed=2)
    (tmp_path / "a_copy.jpg").write_bytes((tmp_path / "a.jpg").read_bytes())
    manifest = write_manifest(tmp_path / "m.csv", [{"id": f"r{i}", "path": p} for i, p in
                                                   enumerate(["a.jpg", "b.jpg", "a_copy.jpg", "a.jpg", "b.jpg"])])
    summary = await runner.run_async(settings_for(emulator, dedupe=True), manifest)
    rows = pq.read_table(summary.results_path).to_pylist()
    assert [r["status"] for r in rows] == ["uploaded"] * 5
    assert emulator.counters.snapshot(arrivals=False)["put_calls"] == 2
    assert rows[2]["thumbnail_key"] == rows[3]["thumbnail_key"] == rows[0]["thumbnail_key"]
    assert rows[4]["thumbnail_key"] == rows[1]["thumbnail_key"] != rows[0]["thumbnail_key"]
    # duplicate_of names the row of the same content that was processed first: which of a group that is
    # depends on which image the pool finished first (documented so), never on anything else.
    for group in ({"r0", "r2", "r3"}, {"r1", "r4"}):
        members = [r for r in rows if r["id"] in group]
        originals = [r["id"] for r in members if r["duplicate_of"] is None]
        assert len(originals) == 1, members
        assert all(r["duplicate_of"] in (None, originals[0]) for r in members)


async def test_fatal_answer_stops_once_with_exit_3(
    emulator: Emulator, settings_for: SettingsFor, archive: tuple[Path, list[tuple[str, str]]], tmp_path: Path
) -> None:
    manifest, _ = archive
    wrong = Credentials(emulator.credentials.access_key, "not-the-secret")
    summary = await runner.run_async(settings_for(emulator, credentials=wrong), manifest)
    assert summary.exit_code == 3
    assert summary.error and "not-the-secret" not in summary.error
    assert emulator.counters.snapshot(arrivals=False)["presign_calls"] <= 1
    with closing(sqlite3.connect(tmp_path / "journal.sqlite")) as db:
        assert db.execute("select count(*) from rows where status = 'uploaded'").fetchone()[0] == 0
    statuses = Counter(pq.read_table(summary.results_path).column("status").to_pylist())
    assert statuses["pending"] > 0 and statuses["uploaded"] == 0


async def test_one_journal_follows_the_user_to_another_manifest(
    emulator: Emulator, settings_for: SettingsFor, archive: tuple[Path, list[tuple[str, str]]], tmp_path: Path
) -> None:
    """The journal is the state of row keys, not a copy of one manifest: a manifest holding some of the same
    rows (by id) skips them, and does its own new rows."""
    manifest, expected = archive
    first = await runner.run_async(settings_for(emulator), manifest)
    calls = emulator.counters.snapshot(arrivals=False)["put_calls"]
    done = pq.read_table(first.results_path).to_pylist()
    from pipeline.samples import make_jpeg

    make_jpeg(tmp_path / "fresh.jpg", 300, 300, seed=77)
    kept = [{"id": r["id"], "path": str(manifest.parent / expected[i][0])} for i, r in enumerate(done[:40])
            if r["status"] == "uploaded"]
    other = write_manifest(tmp_path / "other.csv", [*kept, {"id": "brand-new", "path": "fresh.jpg"}])
    second = await runner.run_async(settings_for(emulator, out=tmp_path / "other.results.parquet"), other)
    assert emulator.counters.snapshot(arrivals=False)["put_calls"] == calls + 1
    rows = pq.read_table(second.results_path).to_pylist()
    before = [r["thumbnail_key"] for r in done[:40] if r["status"] == "uploaded"]
    assert [r["thumbnail_key"] for r in rows[:-1]] == before
    assert rows[-1]["status"] == "uploaded" and second.exit_code == 0


async def test_process_pool_prepares_like_the_thread_pool(
    emulator: Emulator, settings_for: SettingsFor, archive: tuple[Path, list[tuple[str, str]]], tmp_path: Path
) -> None:
    manifest, _ = archive
    threads = await runner.run_async(settings_for(emulator, dry_run=True, out=tmp_path / "t.parquet"), manifest)
    procs = await runner.run_async(
        settings_for(emulator, dry_run=True, out=tmp_path / "p.parquet", use_processes=True, workers=2), manifest
    )
    cols = ["status", "reason", "action", "width", "height", "bytes", "source_sha256"]
    assert pq.read_table(procs.results_path).select(cols).equals(pq.read_table(threads.results_path).select(cols))


async def test_a_megabyte_path_gives_a_short_detail(
    emulator: Emulator, settings_for: SettingsFor, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [{"path": "x" * 1_000_000 + ".jpg"}])
    summary = await runner.run_async(settings_for(emulator), manifest)
    row = pq.read_table(summary.results_path).to_pylist()[0]
    assert row["status"] == "rejected" and row["reason"] in ("not_found", "unreadable")
    assert len(row["detail"]) <= 403 and "..." in row["detail"]
