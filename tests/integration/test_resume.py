"""Resume that follows the user: row identity, a journal that survives edits, results from the rows read."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from helpers import MakeEmulator

from pipeline import runner
from pipeline.emulator import EmulatorConfig
from pipeline.errors import ManifestError
from pipeline.journal.location import default_journal
from pipeline.python_api import make_settings
from pipeline.samples import make_jpeg

FAST = {"rate": 0.0, "confirm_rate": 0.0, "confirm": False, "progress": False}


def _photo(path: Path, seed: int) -> None:
    make_jpeg(path, 256 + seed % 5, 256 + seed % 3, seed=seed, quality=70)


def _manifest(path: Path, rows: list[dict[str, str]], fields: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _read(path: Path) -> list[dict[str, Any]]:
    table = pcsv.read_csv(path) if path.suffix == ".csv" else pq.read_table(path)
    return table.to_pylist()  # type: ignore[no-any-return]


async def test_an_edited_grown_manifest_uploads_only_what_is_new_changed_or_fixed(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    """The issue's scenario: 1,000 rows; then +100 rows, 10 files changed, 5 broken paths fixed, 20 rows
    deleted and --out switched to CSV: exactly 115 uploads, and 1,080 result rows each with its own key."""
    emu = await make_emulator(EmulatorConfig(storage="hash", rate=0, confirm_rate=0))
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(1100):
        _photo(photos / f"p{i:04d}.jpg", i)
    broken = set(range(100, 105))
    rows = [{"id": f"id{i:04d}", "path": f"photos/{'missing-' if i in broken else ''}p{i:04d}.jpg",
             "note": f"n{i}"} for i in range(1000)]
    manifest = _manifest(tmp_path / "people.csv", rows, ["id", "path", "note"])

    def settings(**kw: Any) -> Any:
        return make_settings(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
                             **FAST, **kw)

    first = await runner.run_async(settings(), manifest)
    assert first.by_status == {"uploaded": 995, "rejected": 5}
    assert first.journal_path == default_journal(emu.base_url, emu.workspace)
    assert emu.counters.snapshot(arrivals=False)["put_calls"] == 995
    emu.reset_counters()

    for i in range(10):  # new content for ten files
        _photo(photos / f"p{i * 50 + 7:04d}.jpg", 5000 + i)
    for row in rows:  # the broken paths are fixed
        row["path"] = row["path"].replace("missing-", "")
    deleted = {f"id{i:04d}" for i in range(900, 920)}
    edited = [r for r in rows if r["id"] not in deleted]
    edited += [{"id": f"id{i:04d}", "path": f"photos/p{i:04d}.jpg", "note": f"new{i}"} for i in range(1000, 1100)]
    edited.reverse()  # and the order changed: nothing is paired by position
    _manifest(manifest, edited, ["id", "path", "note"])
    out = tmp_path / "elsewhere" / "people.csv"

    second = await runner.run_async(settings(out=out), manifest)
    snap = emu.counters.snapshot(arrivals=False)
    assert snap["put_calls"] == 115
    assert snap["presign_calls"] == 115
    assert second.by_status == {"uploaded": 1080}
    assert second.planned["new"] == 100 and second.planned["recheck"] == 5 and second.planned["changed"] == 10
    assert second.this_run == {"uploaded": 115}
    results = _read(out)
    assert [r["id"] for r in results] == [r["id"] for r in edited]
    keys = [r["thumbnail_key"] for r in results]
    assert len(set(keys)) == 1080
    for r in results:
        obj = emu.objects[r["thumbnail_key"]]
        assert r["id"] in obj.file_name  # the upload named after this very row
        assert obj.size == r["bytes"]
    changed_ids = {f"id{i * 50 + 7:04d}" for i in range(10)}
    first_keys = {r["id"]: r["thumbnail_key"] for r in _read(tmp_path / "people.results.parquet")}
    for r in results:
        if r["id"] in changed_ids:
            assert r["thumbnail_key"] != first_keys[r["id"]]
        elif r["id"] in first_keys and first_keys[r["id"]] is not None:
            assert r["thumbnail_key"] == first_keys[r["id"]]


async def test_without_ids_a_row_is_its_path(tmp_path: Path, make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(EmulatorConfig(storage="hash", rate=0, confirm_rate=0))
    for i in range(30):
        _photo(tmp_path / f"a{i}.jpg", i)
    rows = [{"path": f"a{i}.jpg"} for i in range(30)]
    manifest = _manifest(tmp_path / "m.csv", rows, ["path"])
    s = make_settings(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials, **FAST)
    assert (await runner.run_async(s, manifest)).by_status == {"uploaded": 30}
    _manifest(manifest, [{"path": "a29.jpg"}, *rows[:10], {"path": "a30.jpg"}], ["path"])
    _photo(tmp_path / "a30.jpg", 30)
    emu.reset_counters()
    again = await runner.run_async(s, manifest)
    assert emu.counters.snapshot(arrivals=False)["put_calls"] == 1
    assert again.by_status == {"uploaded": 12}
    _manifest(manifest, [{"path": "a1.jpg"}, {"path": "a1.jpg"}], ["path"])
    with pytest.raises(ManifestError, match=r"a1\.jpg"):
        await runner.run_async(s, manifest)  # two rows with one path are one key: refused before any upload
