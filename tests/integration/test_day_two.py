"""The second run (issue "Day two"): replaced photos, reused ids, changed persons and other archives under
``--attach``; what each run did (``run_id``, ``this_run``); plans that promise only what the run does; rows of
earlier runs no longer in the input. Every run goes through ``runner.run_async`` against the emulator."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from helpers import write_manifest

from pipeline import runner
from pipeline.config import Settings
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.errors import ConfigError
from pipeline.samples import make_jpeg

pytestmark = pytest.mark.parametrize(
    "emulator", [EmulatorConfig(rate=0, confirm_rate=0, persons_rate=0)], indirect=True)

SettingsFor = Callable[..., Settings]


def _archive(folder: Path, n: int = 12, *, seed: int = 0, person: Callable[[int], str] | None = None,
             name: str = "manifest.csv", persons: int = 4) -> tuple[Path, list[dict[str, Any]]]:
    """``n`` photos of ``persons`` persons, ids ``r00``.., the first of each person marked primary."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        make_jpeg(folder / f"p{i:02d}.jpg", 300, 300, seed=seed + i, quality=70)
        who = person(i) if person is not None else f"Person {i % persons}"
        rows.append({"id": f"r{i:02d}", "path": f"p{i:02d}.jpg", "person": who,
                     "primary": "yes" if i < persons else ""})
    return write_manifest(folder / name, rows), rows


def _results(summary: Any) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in pq.read_table(summary.results_path).to_pylist()}


def _presigns(emu: Emulator) -> int:
    return int(emu.counters.snapshot(arrivals=False)["presign_calls"])


def _person_calls(emu: Emulator) -> int:
    snap = emu.counters.snapshot(arrivals=False)
    return sum(int(v) for k, v in snap.items() if k.startswith("person_") and k.endswith("_calls"))


def _keys_of(emu: Emulator) -> dict[str, set[str]]:
    """Each person's name -> the keys attached to it."""
    return {str(p.name): {t.key for t in p.thumbnails} for p in emu.persons.values()}


async def test_a_replaced_photo_is_uploaded_again_and_attached_to_the_same_person(
        emulator: Emulator, settings_for: SettingsFor, tmp_path: Path) -> None:
    manifest, _ = _archive(tmp_path / "a")
    first = await runner.run_async(settings_for(emulator, attach=True), manifest)
    assert first.this_run == {"attached": 12}
    old = _results(first)
    make_jpeg(tmp_path / "a" / "p05.jpg", 320, 320, seed=999, quality=70)  # replaced at its path
    presigns = _presigns(emulator)
    second = await runner.run_async(settings_for(emulator, attach=True), manifest)
    assert _presigns(emulator) == presigns + 1
    new = _results(second)
    row = new["r05"]
    assert row["status"] == "attached" and row["thumbnail_key"] != old["r05"]["thumbnail_key"]
    assert row["source_sha256"] == hashlib.sha256((tmp_path / "a" / "p05.jpg").read_bytes()).hexdigest()
    assert row["this_run"] != "unchanged" and row["run_id"] == second.run_id != first.run_id
    held = _keys_of(emulator)["Person 1"]
    assert {old["r05"]["thumbnail_key"], row["thumbnail_key"]} <= held and len(held) == 4  # the old one stays
    assert "stays" in (row["detail"] or "")
    assert Counter(r["this_run"] for r in new.values()) == {"unchanged": 11, row["this_run"]: 1}
    third = await runner.run_async(settings_for(emulator, attach=True), manifest)
    assert _presigns(emulator) == presigns + 1 and third.this_run == {}  # and then it is settled


async def test_an_id_reused_for_another_file_of_the_same_person_replaces_its_thumbnail(
        emulator: Emulator, settings_for: SettingsFor, tmp_path: Path) -> None:
    manifest, rows = _archive(tmp_path / "a")
    first = _results(await runner.run_async(settings_for(emulator, attach=True), manifest))
    make_jpeg(tmp_path / "a" / "other.jpg", 300, 300, seed=4242, quality=70)
    rows[2]["path"] = "other.jpg"  # same id, same person, another file
    second = await runner.run_async(settings_for(emulator, attach=True), write_manifest(manifest, rows))
    row = _results(second)["r02"]
    assert row["thumbnail_key"] != first["r02"]["thumbnail_key"] and row["status"] == "attached"
    assert row["source_sha256"] == hashlib.sha256((tmp_path / "a" / "other.jpg").read_bytes()).hexdigest()
    assert row["thumbnail_key"] in _keys_of(emulator)["Person 2"]


async def test_the_same_file_moved_is_not_uploaded_again(emulator: Emulator, settings_for: SettingsFor,
                                                         tmp_path: Path) -> None:
    manifest, rows = _archive(tmp_path / "a")
    first = _results(await runner.run_async(settings_for(emulator, attach=True), manifest))
    (tmp_path / "a" / "moved").mkdir()
    (tmp_path / "a" / "p03.jpg").rename(tmp_path / "a" / "moved" / "p03.jpg")
    rows[3]["path"] = "moved/p03.jpg"
    presigns = _presigns(emulator)
    second = await runner.run_async(settings_for(emulator, attach=True), write_manifest(manifest, rows))
    assert _presigns(emulator) == presigns  # hashed: the same content
    row = _results(second)["r03"]
    assert row["thumbnail_key"] == first["r03"]["thumbnail_key"] and row["this_run"] == "rechecked"


async def test_a_changed_person_gets_a_new_key_and_the_old_one_stays(emulator: Emulator, settings_for: SettingsFor,
                                                                     tmp_path: Path) -> None:
    manifest, rows = _archive(tmp_path / "a")
    first = _results(await runner.run_async(settings_for(emulator, attach=True), manifest))
    old_key = first["r09"]["thumbnail_key"]
    rows[9]["person"] = "Person 2"  # was Person 1
    second = await runner.run_async(settings_for(emulator, attach=True), write_manifest(manifest, rows))
    row = _results(second)["r09"]
    held = _keys_of(emulator)
    assert row["status"] == "attached" and row["thumbnail_key"] != old_key
    assert row["thumbnail_key"] in held["Person 2"] and old_key in held["Person 1"]
    assert second.planned.get("person_changed") == 1


async def test_another_archive_reusing_the_ids_is_stopped_before_any_upload(
        emulator: Emulator, settings_for: SettingsFor, tmp_path: Path) -> None:
    manifest_a, _ = _archive(tmp_path / "a")
    await runner.run_async(settings_for(emulator, attach=True), manifest_a)
    manifest_b, _ = _archive(tmp_path / "b", seed=500, person=lambda i: f"Other {i % 3}", persons=3)
    presigns, calls = _presigns(emulator), _person_calls(emulator)
    with pytest.raises(ConfigError) as caught:
        await runner.run_async(settings_for(emulator, attach=True), manifest_b)
    text = str(caught.value)
    assert text.startswith("12 row(s)") and "--id-prefix" in text and "--journal" in text
    assert text.count("' was '") == 3  # three examples
    assert _presigns(emulator) == presigns and _person_calls(emulator) == calls
    with pytest.raises(ConfigError):  # without --attach too: the rows would be taken all the same
        await runner.run_async(settings_for(emulator), manifest_b)
    apart = await runner.run_async(settings_for(emulator, attach=True, id_prefix="b/"), manifest_b)
    assert apart.this_run == {"attached": 12} and set(_results(apart)) == {f"r{i:02d}" for i in range(12)}
    assert len(_keys_of(emulator)) == 4 + 3


async def test_each_row_says_which_run_changed_it_and_what_this_run_did(
        emulator: Emulator, settings_for: SettingsFor, tmp_path: Path) -> None:
    manifest, rows = _archive(tmp_path / "a", 6)
    (tmp_path / "a" / "small.jpg").write_bytes((tmp_path / "a" / "p00.jpg").read_bytes()[:200])
    rows.append({"id": "bad", "path": "small.jpg", "person": "", "primary": ""})
    first = await runner.run_async(settings_for(emulator), write_manifest(manifest, rows))
    one = _results(first)
    assert {r["run_id"] for r in one.values()} == {first.run_id}
    assert Counter(r["this_run"] for r in one.values()) == {"uploaded": 6, "rejected": 1}
    make_jpeg(tmp_path / "a" / "p06.jpg", 300, 300, seed=77, quality=70)
    rows.append({"id": "r06", "path": "p06.jpg", "person": "", "primary": ""})
    second = await runner.run_async(settings_for(emulator), write_manifest(manifest, rows))
    two = _results(second)
    assert two["r06"]["this_run"] == "uploaded" and two["r06"]["run_id"] == second.run_id
    assert all(two[k]["this_run"] == "unchanged" and two[k]["run_id"] == first.run_id for k in one if k != "bad")
    assert two["bad"]["this_run"] == "unchanged"  # a content rejection is not looked at again


async def test_rows_of_earlier_runs_not_in_this_input_are_counted(emulator: Emulator, settings_for: SettingsFor,
                                                                 tmp_path: Path) -> None:
    manifest, rows = _archive(tmp_path / "a")
    await runner.run_async(settings_for(emulator, attach=True), manifest)
    trimmed = write_manifest(tmp_path / "a" / "trimmed.csv", rows[:5])
    summary = await runner.run_async(settings_for(emulator, attach=True), trimmed)
    assert summary.not_in_manifest == {"attached": 7} and summary.this_run == {}


async def test_the_dry_run_promises_what_the_real_run_does(emulator: Emulator, settings_for: SettingsFor,
                                                           tmp_path: Path) -> None:
    manifest, rows = _archive(tmp_path / "a")
    (tmp_path / "a" / "tiny.jpg").write_bytes(b"not a picture")
    make_jpeg(tmp_path / "a" / "small.jpg", 100, 100, seed=3)
    rows += [{"id": "x1", "path": "tiny.jpg", "person": "Person 0", "primary": ""},
             {"id": "x2", "path": "small.jpg", "person": "Nobody Else", "primary": ""},
             {"id": "x3", "path": "gone.jpg", "person": "Person 1", "primary": ""}]
    manifest = write_manifest(manifest, rows)
    dry = await runner.run_async(settings_for(emulator, attach=True, dry_run=True,
                                              out=tmp_path / "dry.parquet"), manifest)
    real = await runner.run_async(settings_for(emulator, attach=True), manifest)
    assert dry.planned.get("new") == real.this_run.get("attached") == 12
    assert dry.planned.get("rejected") == real.planned.get("rejected") == 3
    assert dry.attach["thumbnails_to_attach"] == real.attach["thumbnails_attached"] == 12
    assert dry.attach["persons_to_create"] == real.attach["persons_created"] == 4  # "Nobody Else" never uploads


async def test_rows_without_a_person_under_attach_are_warned_about(emulator: Emulator, settings_for: SettingsFor,
                                                                   tmp_path: Path) -> None:
    manifest, rows = _archive(tmp_path / "a", 4)
    rows[1]["person"] = ""
    summary = await runner.run_async(settings_for(emulator, attach=True), write_manifest(manifest, rows))
    row = _results(summary)["r01"]
    assert row["status"] == "uploaded" and "expires at" in row["detail"] and "UTC" in row["detail"]
    assert len(summary.warnings) == 1 and summary.warnings[0].startswith("1 row(s) have no person")


async def test_notebook_variants_of_one_frame_upload_and_attach_each_photo_once(emulator: Emulator,
                                                                                 tmp_path: Path) -> None:
    """Seven cells on one DataFrame, no ``journal=``: the workspace's journal makes each a resume."""
    import pandas as pd

    from pipeline.python_api import ingest_async

    _, rows = _archive(tmp_path / "a", 20)
    frame = pd.DataFrame([{**r, "path": str(tmp_path / "a" / r["path"])} for r in rows])
    options = {"workspace": emulator.workspace, "endpoint": emulator.base_url, "credentials": emulator.credentials,
               "rate": 0.0, "confirm_rate": 0.0, "progress": False, "attach": True}
    variants = [frame.head(10), frame, frame.assign(team="x"), frame.sort_values("path", ascending=False),
                frame[frame["person"] != "Person 1"], frame.iloc[::-1], frame.sample(frac=1.0, random_state=3)]
    done = []
    for variant in variants:
        summary = await ingest_async(variant.reset_index(drop=True), **options)
        done.append(summary.this_run)
    assert _presigns(emulator) == 20 and done[0] == {"attached": 10} and done[1] == {"attached": 10}
    assert all(d == {} for d in done[2:])
    held = _keys_of(emulator)
    assert sorted(len(keys) for keys in held.values()) == [5, 5, 5, 5]  # each photo once on its person


async def test_a_notebook_dry_run_of_a_table_needs_no_folder_of_its_own(emulator: Emulator, tmp_path: Path) -> None:
    """An in-memory input without ``out=``: the dry run keeps its scratch files in its own temporary folder (the
    journal's folder, which a dry run never creates, held them before)."""
    import pyarrow as pa

    from pipeline.python_api import ingest_async

    _, rows = _archive(tmp_path / "a", 3)
    table = pa.Table.from_pylist([{**r, "path": str(tmp_path / "a" / r["path"])} for r in rows])
    summary = await ingest_async(table, workspace=emulator.workspace, endpoint=emulator.base_url,
                                 credentials=emulator.credentials, dry_run=True, progress=False)
    assert summary.by_status == {"skipped": 3} and summary.results is not None and summary.results.num_rows == 3
