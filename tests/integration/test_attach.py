"""``--attach`` end to end against the emulator (issue 13): persons created once, keys on the right person,
primaries as marked, ``person_full`` before upload, re-runs that attach what an earlier run uploaded."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from attach_archive import EXISTING, check_attached, make_archive, seed
from helpers import write_manifest
from structlog.testing import capture_logs

from pipeline import runner
from pipeline.config import Credentials, Settings
from pipeline.emulator import Emulator, EmulatorConfig, age_uploads
from pipeline.errors import ConfigError
from pipeline.runner.attach_route import KEY_GONE

pytestmark = pytest.mark.parametrize(
    "emulator", [EmulatorConfig(rate=0, confirm_rate=0, persons_rate=0)], indirect=True)

SettingsFor = Callable[..., Settings]


@pytest.mark.parametrize("within", [600.0, 0.2], ids=["persons-whole", "persons-in-parts"])
async def test_three_hundred_rows_forty_persons(emulator: Emulator, settings_for: SettingsFor,
                                                tmp_path: Path, within: float) -> None:
    """``within`` 0.2 s: keys wait at most 0.05 s for their person's other rows, so persons are created with
    what is there and extended later (the primary set when the marked row comes); 600 s: mostly whole."""
    existing_id = await seed(emulator)
    archive = make_archive(tmp_path / "photos", existing_id)
    summary = await runner.run_async(settings_for(emulator, attach=True, attach_rate=0.0, attach_within=within),
                                     archive.manifest)
    results = pq.read_table(summary.results_path).to_pylist()
    check_attached(emulator, archive, results, existing_id)
    assert summary.exit_code == 0
    assert summary.attach == {"persons_created": 37, "persons_extended": 2, "thumbnails_attached": 268,
                              "thumbnails_superseded": 0}
    assert summary.by_reason.get("person_full") == 10
    assert summary.this_run == {"attached": 268, "uploaded": 22, "rejected": 10}
    assert emulator.counters.snapshot(arrivals=False)["presign_calls"] == 3 + 290  # person_full rows never uploaded
    again = await runner.run_async(settings_for(emulator, attach=True, attach_rate=0.0), archive.manifest)
    assert again.attach["thumbnails_attached"] == 0 and again.exit_code == 0


async def test_two_marked_primaries_stop_before_any_upload(emulator: Emulator, settings_for: SettingsFor,
                                                           tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "photos", "1")
    rows = [dict(r) for r in archive.rows]
    first, second = [r for r in rows if r["person"] == "Person 01"][:2]
    first["primary"] = second["primary"] = "true"
    manifest = write_manifest(tmp_path / "photos" / "two.csv", rows)
    with pytest.raises(ConfigError, match=f"{first['id']}.*{second['id']}"):
        await runner.run_async(settings_for(emulator, attach=True), manifest)
    assert emulator.counters.snapshot(arrivals=False)["presign_calls"] == 0


async def test_a_day_later_old_keys_are_uploaded_again_then_attached(
        emulator: Emulator, settings_for: SettingsFor, tmp_path: Path) -> None:
    existing_id = await seed(emulator)
    archive = make_archive(tmp_path / "photos", existing_id)
    first = await runner.run_async(settings_for(emulator), archive.manifest)
    assert first.by_status == {"uploaded": 300}
    age_uploads(emulator, 24 * 3600)  # the API's clock and ...
    with closing(sqlite3.connect(tmp_path / "journal.sqlite")) as db:  # ... ours move a day on
        db.execute("UPDATE rows SET uploaded_at = datetime(uploaded_at, '-1 day')")
        db.commit()
    old = {r["id"]: r["thumbnail_key"] for r in pq.read_table(first.results_path).to_pylist()}
    summary = await runner.run_async(settings_for(emulator, attach=True, attach_rate=0.0), archive.manifest)
    results = pq.read_table(summary.results_path).to_pylist()
    check_attached(emulator, archive, results, existing_id)
    attached = [r for r in results if r["status"] == "attached"]
    assert len(attached) == 268 and all(r["thumbnail_key"] != old[r["id"]] for r in attached)
    # BIG's 10 rows past its limit are planned too (the person is looked up beside the uploads): refused
    # person_full just before their presign, never uploaded.
    assert summary.planned.get("expired") == len(attached) + 10 and summary.planned.get("person_full") == 10
    assert emulator.counters.snapshot(arrivals=False)["presign_calls"] == 3 + 300 + 268


async def test_attach_what_a_run_without_attach_uploaded(emulator: Emulator, settings_for: SettingsFor,
                                                         tmp_path: Path) -> None:
    existing_id = await seed(emulator)
    archive = make_archive(tmp_path / "photos", existing_id)
    first = await runner.run_async(settings_for(emulator), archive.manifest)
    presigns = emulator.counters.snapshot(arrivals=False)["presign_calls"]
    summary = await runner.run_async(settings_for(emulator, attach=True, attach_rate=0.0), archive.manifest)
    assert emulator.counters.snapshot(arrivals=False)["presign_calls"] == presigns  # nothing uploaded again
    results = pq.read_table(summary.results_path).to_pylist()
    # The 10 rows past BIG's limit were uploaded by the first run: rejected person_full, saying so, their key
    # kept (never attached, never uploaded again).
    check_attached(emulator, archive, results, existing_id)
    assert first.exit_code == 0 and summary.planned.get("attach") == 268 and summary.exit_code == 0
    keys = {r["id"]: r["thumbnail_key"] for r in pq.read_table(first.results_path).to_pylist()}
    full = [r for r in results if r["reason"] == "person_full"]
    assert len(full) == 10 and all(r["status"] == "rejected" and r["thumbnail_key"] == keys[r["id"]]
                                   and r["detail"].startswith("uploaded by an earlier run") for r in full)
    assert summary.by_reason == {"person_full": 10} and summary.planned.get("person_full") == 10
    for attach in (False, True):  # and so it stays, with --attach or without
        again = await runner.run_async(settings_for(emulator, attach=attach, attach_rate=0.0), archive.manifest)
        rows = {r["id"]: r for r in pq.read_table(again.results_path).to_pylist()}
        assert all(rows[r["id"]]["status"] == "rejected" and rows[r["id"]]["thumbnail_key"] == keys[r["id"]]
                   for r in full)
    assert emulator.counters.snapshot(arrivals=False)["presign_calls"] == presigns


async def test_dry_run_shows_the_attach_plan(emulator: Emulator, settings_for: SettingsFor, tmp_path: Path) -> None:
    existing_id = await seed(emulator)
    archive = make_archive(tmp_path / "photos", existing_id)
    before = emulator.counters.snapshot(arrivals=False)
    with capture_logs() as events:
        summary = await runner.run_async(settings_for(emulator, attach=True, dry_run=True), archive.manifest)
    # Names looked up read-only: EXISTING is one to extend, as the id is; the plan is what the real run does.
    assert summary.attach == {"persons_to_create": 37, "persons_to_extend": 2, "thumbnails_to_attach": 268,
                              "person_full": 10}
    after = emulator.counters.snapshot(arrivals=False)
    assert all(after[k] == before[k] for k in ("person_create_calls", "person_add_calls", "presign_calls"))
    assert after["person_list_calls"] > before["person_list_calls"] and len(emulator.persons) == 2
    shown = {p["person"]: p for e in events if e["event"] == "attach_plan" for p in e["persons"]}
    assert shown[f"person {EXISTING!r}"] == {"person": f"person {EXISTING!r}", "action": "extend",
                                             "thumbnails": 3, "holds": 2}


async def test_dry_run_counts_person_full_against_what_an_existing_person_holds(
        emulator: Emulator, settings_for: SettingsFor, tmp_path: Path) -> None:
    existing_id = await seed(emulator)  # EXISTING holds 2
    archive = make_archive(tmp_path / "photos", existing_id)
    summary = await runner.run_async(settings_for(emulator, attach=True, dry_run=True, person_max=4),
                                     archive.manifest)
    # BIG 110 -> 4 (106 full); 18 persons of 5 rows -> 4 (18 full); EXISTING 2 + 3 -> 2 more (1 full);
    # the id person holds 1: its 3 rows fit.
    assert summary.attach["person_full"] == 106 + 18 + 1
    assert summary.attach["thumbnails_to_attach"] == 4 + 36 * 4 + 2 + 3


async def test_dry_run_says_when_the_persons_cannot_be_looked_up(
        emulator: Emulator, settings_for: SettingsFor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NCLOUD_ACCESS_KEY", "NCLOUD_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ncloud/configure either
    archive = make_archive(tmp_path / "photos", "1001")
    with capture_logs() as events:
        summary = await runner.run_async(settings_for(emulator, attach=True, dry_run=True,
                                                      credentials=Credentials("dry-run", "dry-run")),
                                         archive.manifest)
    # Not guessed: the 38 names are neither "to create" nor "to extend"; the id is one to extend.
    assert summary.attach == {"persons_to_create": 0, "persons_to_extend": 1, "thumbnails_to_attach": 3,
                              "person_full": 0, "names_not_looked_up": 38}
    assert next(e["reason"] for e in events if e["event"] == "attach_lookup_skipped").startswith("no API key pair")
    assert emulator.counters.snapshot(arrivals=False)["person_list_calls"] == 0


async def test_a_key_the_service_says_expired_fails_then_is_uploaded_again(
        emulator: Emulator, settings_for: SettingsFor, tmp_path: Path) -> None:
    existing_id = await seed(emulator)
    archive = make_archive(tmp_path / "photos", existing_id)
    await runner.run_async(settings_for(emulator), archive.manifest)
    age_uploads(emulator, 24 * 3600)  # the keys expired server-side; our clock has not moved
    failed = await runner.run_async(settings_for(emulator, attach=True, attach_rate=0.0), archive.manifest)
    rows = pq.read_table(failed.results_path).to_pylist()
    bad = [r for r in rows if r["status"] == "failed"]
    assert failed.exit_code == 1 and len(bad) == 268 and not emulator.persons.keys() - {1001, 1002}
    assert all(r["reason"] == "attach_failed" and r["detail"].startswith(KEY_GONE) and "expired" in r["detail"]
               and r["thumbnail_key"] for r in bad)
    # The next run does not try the same keys again: it uploads those rows again, then attaches them.
    done = await runner.run_async(settings_for(emulator, attach=True, attach_rate=0.0), archive.manifest)
    check_attached(emulator, archive, pq.read_table(done.results_path).to_pylist(), existing_id)
    assert done.planned.get("expired") == 268 and done.exit_code == 0
    with closing(sqlite3.connect(tmp_path / "journal.sqlite")) as db:
        expired = {k for (k,) in db.execute("SELECT thumbnail_key FROM orphans WHERE reason = 'expired'")}
    assert {r["thumbnail_key"] for r in bad} == expired


async def test_an_unknown_person_id_fails_its_rows_before_upload(emulator: Emulator, settings_for: SettingsFor,
                                                                 tmp_path: Path) -> None:
    existing_id = await seed(emulator)
    archive = make_archive(tmp_path / "photos", "999999")
    summary = await runner.run_async(settings_for(emulator, attach=True, attach_rate=0.0), archive.manifest)
    rows = pq.read_table(summary.results_path).to_pylist()
    # The manifest's person_id column (integers in this CSV) is the results' person_id: the input id, as text,
    # on rows that were not attached.
    assert "input_person_id" not in rows[0]
    unknown = [r for r in rows if r["person_id"] == "999999"]
    assert len(unknown) == 3 and all(r["status"] == "failed" and r["reason"] == "person_not_found"
                                     and "999999" in r["detail"] and r["thumbnail_key"] is None for r in unknown)
    assert summary.exit_code == 1 and len(emulator.persons[int(existing_id)].keys) == 1
    assert emulator.counters.snapshot(arrivals=False)["presign_calls"] == 3 + 290 - 3


async def test_persons_calls_retried_through_5xx_and_dropped_connections(
        emulator: Emulator, settings_for: SettingsFor, tmp_path: Path) -> None:
    existing_id = await seed(emulator)
    emulator.faults.error_rate, emulator.faults.drop_rate = 0.1, 0.05  # every call, persons calls included
    archive = make_archive(tmp_path / "photos", existing_id)
    summary = await runner.run_async(settings_for(emulator, attach=True, attach_rate=0.0, attach_within=0.2),
                                     archive.manifest)
    check_attached(emulator, archive, pq.read_table(summary.results_path).to_pylist(), existing_id)
    assert summary.exit_code == 0 and summary.retries
