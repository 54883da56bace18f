"""``--attach`` on day two (issue "Day two"; "Hardening": per-row faults stay per-row): person calls only for
work, made beside the first uploads; names normalised; names the API cannot take refused per row."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pyarrow.parquet as pq
import pytest
from emulator_tools import max_in_window
from helpers import write_manifest
from persons_helpers import uploaded_keys
from structlog.testing import capture_logs

from pipeline import runner
from pipeline.attach import AttachSettings, PersonsApi
from pipeline.client import ApiClient
from pipeline.config import ApiSettings, Settings
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.emulator.state import PERSON_ROUTES
from pipeline.journal import Journal
from pipeline.manifest import Manifest
from pipeline.models import Status
from pipeline.progress import Progress
from pipeline.python_api import make_settings
from pipeline.runner.attach_prep import collect, prepare
from pipeline.runner.attach_route import KEY_GONE, AttachRoute
from pipeline.runner.attach_stage import AttachStage
from pipeline.runner.context import RunContext
from pipeline.runner.control import RunControl
from pipeline.runner.recorder import Recorder
from pipeline.runner.records import Attachable, Pipe
from pipeline.samples import make_jpeg

UNCAPPED = pytest.mark.parametrize(
    "emulator", [EmulatorConfig(rate=0, confirm_rate=0, persons_rate=0)], indirect=True)

SettingsFor = Callable[..., Settings]


def _person_calls(emu: Emulator) -> int:
    snap = emu.counters.snapshot(arrivals=False)
    return sum(snap[f"{route}_calls"] for route in PERSON_ROUTES)


def _photos(folder: Path, owners: list[str], *, broken: frozenset[int] = frozenset()) -> Path:
    """A manifest of one photo per owner (``""``: no person); rows in ``broken`` are not images."""
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for i, who in enumerate(owners):
        path = folder / f"q{i:03d}.jpg"
        if i in broken:
            path.write_bytes(b"not a picture at all")
        else:
            make_jpeg(path, 300, 300, seed=3000 + i, quality=70)
        rows.append({"id": f"q{i:03d}", "path": path.name, "person": who})
    return write_manifest(folder / "manifest.csv", rows)


@UNCAPPED
async def test_a_run_with_nothing_to_attach_makes_no_person_call(emulator: Emulator, settings_for: SettingsFor,
                                                                  tmp_path: Path) -> None:
    manifest = _photos(tmp_path / "photos", ["Ann", "Ann", "Ann", "Bob", "Bob", ""])
    first = await runner.run_async(settings_for(emulator, attach=True, person_max=2), manifest)
    assert first.exit_code == 0 and first.by_reason == {"person_full": 1}
    before = _person_calls(emulator)
    for _ in range(2):
        again = await runner.run_async(settings_for(emulator, attach=True, person_max=2), manifest)
        # Every row is attached, or rejected person_full (which alone never causes a look-up): nothing to ask.
        assert again.exit_code == 0 and again.by_status == {"attached": 4, "rejected": 1, "uploaded": 1}
        assert _person_calls(emulator) == before


@UNCAPPED
async def test_rows_rejected_by_prepare_never_cause_a_look_up(emulator: Emulator, settings_for: SettingsFor,
                                                              tmp_path: Path) -> None:
    owners = ["Ann", "Ann", "Bob", "", "Cy"]
    manifest = _photos(tmp_path / "photos", owners, broken=frozenset({0, 1, 4}))  # Ann's and Cy's rows
    summary = await runner.run_async(settings_for(emulator, attach=True), manifest)
    assert summary.by_status == {"attached": 1, "uploaded": 1, "rejected": 3}
    snap = emulator.counters.snapshot(arrivals=False)
    # Bob only: one filtered list call (no such person) and his create.
    assert snap["person_list_calls"] == 1 and snap["person_create_calls"] == 1 and snap["person_get_calls"] == 0
    assert [p.name for p in emulator.persons.values()] == ["Bob"]


@UNCAPPED
async def test_the_first_upload_does_not_wait_for_every_look_up(emulator: Emulator, settings_for: SettingsFor,
                                                                tmp_path: Path) -> None:
    names = [f"Friend {n:02d}" for n in range(12)]
    manifest = _photos(tmp_path / "photos", [n for n in names for _ in range(2)])
    summary = await runner.run_async(settings_for(emulator, attach=True), manifest)
    assert summary.by_status == {"attached": 24}
    snap = emulator.counters.snapshot()
    first_presign = min(snap["presign_arrivals"])
    looked_up_before = sum(1 for t in snap["persons_arrivals"] if t < first_presign)
    # Before: the 12 names were looked up (12 list calls) before any upload.
    assert snap["person_list_calls"] == 12 and looked_up_before <= 6


@UNCAPPED
async def test_names_the_api_cannot_take_are_refused_per_row(emulator: Emulator, settings_for: SettingsFor,
                                                             tmp_path: Path) -> None:
    bad = ["x" * 51, "   ", "semi;colon", "pi|pe", "back`tick", "\u200b"]
    manifest = _photos(tmp_path / "photos", ["Ann", *bad, "Ann", ""])
    for _ in range(2):  # and so on every re-run, without a traceback
        summary = await runner.run_async(settings_for(emulator, attach=True), manifest)
        rows = pq.read_table(summary.results_path).to_pylist()
        refused = [r for r in rows if r["reason"] == "invalid_person"]
        assert len(refused) == len(bad) and all(r["status"] == "rejected" and r["thumbnail_key"] is None
                                                for r in refused)
        assert "51 characters" in refused[0]["detail"] and "blank" in refused[1]["detail"]
        assert "';'" in refused[2]["detail"] and "'|'" in refused[3]["detail"] and "'`'" in refused[4]["detail"]
        assert summary.by_status == {"attached": 2, "uploaded": 1, "rejected": len(bad)}
        assert summary.exit_code == 0
    assert emulator.counters.snapshot(arrivals=False)["presign_calls"] == 3  # the refused rows never uploaded
    assert [p.name for p in emulator.persons.values()] == ["Ann"]
    dry = await runner.run_async(settings_for(emulator, attach=True, dry_run=True, out=tmp_path / "dry.parquet"),
                                 manifest)
    assert dry.attach["invalid_person"] == len(bad) and dry.exit_code == 0


@UNCAPPED
async def test_names_differing_only_by_spaces_or_zero_width_characters_are_one_person(
        emulator: Emulator, settings_for: SettingsFor, tmp_path: Path) -> None:
    manifest = _photos(tmp_path / "photos", ["Alice", "Alice ", "Alice\u200b", " Alice\ufeff", "Bob"])
    with capture_logs() as events:
        summary = await runner.run_async(settings_for(emulator, attach=True), manifest)
    assert summary.by_status == {"attached": 5}
    assert sorted((p.name, len(p.keys)) for p in emulator.persons.values()) == [("Alice", 4), ("Bob", 1)]
    warned = [e for e in events if e["event"] == "person_names_normalised"]
    assert len(warned) == 1 and warned[0]["names"] == 3 and warned[0]["log_level"] == "warning"


class _Side:
    """The attach side of a run, wired by hand around a journal and the emulator, for the half of a reopened
    row the plan and upload stages do not do: ``admit`` before the upload, ``uploaded`` after it."""

    def __init__(self, emu: Emulator, journal: Journal, manifest: Path, person_max: int = 100) -> None:
        self.emu, self.journal, self.person_max = emu, journal, person_max
        self.rows = {r.key: r for b in Manifest.open(manifest).row_batches() for r in b.rows}
        self.collected = collect(Manifest.open(manifest), journal)

    async def __aenter__(self) -> _Side:
        api_settings = ApiSettings(workspace=self.emu.workspace, credentials=self.emu.credentials,
                                   endpoint=self.emu.base_url)
        self.client = await ApiClient(api_settings).__aenter__()
        api = PersonsApi(self.client, AttachSettings(attach_rate=0, person_max=self.person_max))
        c = self.collected
        recorder = Recorder(self.journal, Progress(len(self.rows), enabled=False))
        self.book = await prepare(api, recorder, c, self.person_max, c.refusals, c.rejected, c.full)
        pipe: Pipe[Attachable] = Pipe(16)
        self.route = AttachRoute(self.book, recorder, pipe)
        settings = make_settings(workspace=self.emu.workspace, endpoint=self.emu.base_url,
                                 credentials=self.emu.credentials, person_max=self.person_max, attach_within=600.0)
        ctx = RunContext(settings, self.journal, recorder, RunControl(), time.monotonic, "run-1")
        self.stage = AttachStage(ctx, api, self.book, pipe)
        self.task = asyncio.create_task(self.stage.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.route.out.close()
        await self.task
        await self.client.__aexit__(None, None, None)


def _reopened(journal: Journal, key: str, status: str, thumbnail_key: str | None = None) -> None:
    """What the plan and upload stages journal for a reopened attached row (attached -> pending -> presigned
    -> uploaded), written directly (through the journal's own locked connection): this half attaches."""
    with journal._transaction() as db:
        db.execute("UPDATE rows SET status = ?, thumbnail_key = ?, person_id = NULL, attached_at = NULL "
                   "WHERE key = ?", (status, thumbnail_key, key))


@UNCAPPED
async def test_a_changed_source_or_person_is_attached_again(emulator: Emulator, settings_for: SettingsFor,
                                                            tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    manifest = _photos(folder, ["Ann", "Ann", "Bob"])
    first = await runner.run_async(settings_for(emulator, attach=True), manifest)
    old = {r["id"]: r for r in pq.read_table(first.results_path).to_pylist()}
    ann, bob = old["q000"]["person_id"], old["q002"]["person_id"]
    rows = [{"id": f"q{i:03d}", "path": f"q{i:03d}.jpg", "person": who} for i, who in enumerate(["Ann", "Ann", "Cy"])]
    manifest = write_manifest(folder / "manifest.csv", rows)  # q000's source changes, q002 moves to Cy
    async with aiohttp.ClientSession() as http:
        new = await uploaded_keys(http, emulator, 2, prefix="again")
    db_path = tmp_path / "journal.sqlite"
    with Journal.open(db_path, workspace=emulator.workspace) as journal:
        async with _Side(emulator, journal, manifest) as side:
            for key, thumbnail, person in (("q000", new[0], ann), ("q002", new[1], bob)):
                assert await side.route.admit(side.rows[key]) is None
                _reopened(journal, key, "uploaded", thumbnail)
                await side.route.uploaded(side.rows[key], thumbnail, replaces=old[key]["thumbnail_key"],
                                          replaced_person=person)
        got = journal.records(["q000", "q002"])
        assert side.book.counts()["thumbnails_superseded"] == 2
    persons = {p.name: p for p in emulator.persons.values()}
    assert persons["Ann"].keys == [old["q000"]["thumbnail_key"], old["q001"]["thumbnail_key"], new[0]]
    assert persons["Bob"].keys == [old["q002"]["thumbnail_key"]] and persons["Cy"].keys == [new[1]]
    assert got["q000"].status is Status.ATTACHED and got["q000"].person_id == ann
    assert got["q000"].detail == (f"attached again: its source changed; the earlier thumbnail "
                                  f"{old['q000']['thumbnail_key']} stays with person {ann} (the API cannot "
                                  "remove one)")
    cy = str(persons["Cy"].id)
    assert got["q002"].status is Status.ATTACHED and got["q002"].person_id == cy
    assert got["q002"].detail == (f"moved to person {cy}; the earlier thumbnail {old['q002']['thumbnail_key']} "
                                  f"stays with person {bob} (the API cannot remove one)")


@UNCAPPED
async def test_an_old_thumbnail_still_counts_against_person_max(emulator: Emulator, settings_for: SettingsFor,
                                                                tmp_path: Path) -> None:
    manifest = _photos(tmp_path / "photos", ["Ann", "Ann"])
    await runner.run_async(settings_for(emulator, attach=True, person_max=2), manifest)
    db_path = tmp_path / "journal.sqlite"
    with Journal.open(db_path, workspace=emulator.workspace) as journal:
        async with _Side(emulator, journal, manifest, person_max=2) as side:
            _reopened(journal, "q000", "pending")  # its source changed: reopened before its upload
            refusal = await side.route.admit(side.rows["q000"])
        got = journal.records(["q000"])["q000"]
    # Ann holds 2 (its earlier thumbnail of q000 stays): no room for a new key, so none is uploaded.
    assert refusal is not None and refusal.reason == "person_full"
    assert got.status is Status.REJECTED and got.reason == "person_full" and "earlier thumbnail" in (got.detail or "")
    assert len(next(iter(emulator.persons.values())).keys) == 2


@pytest.mark.parametrize("emulator", [EmulatorConfig(rate=0, confirm_rate=0, persons_rate=10)], indirect=True)
async def test_person_calls_of_a_run_never_exceed_their_cap_on_the_emulators_arrivals(
        emulator: Emulator, settings_for: SettingsFor, tmp_path: Path) -> None:
    # 15 new persons of one photo each: look-ups beside the uploads and creates, all under one cap of 10/s.
    manifest = _photos(tmp_path / "photos", [f"Solo {n:02d}" for n in range(15)])
    summary = await runner.run_async(settings_for(emulator, attach=True, attach_rate=10.0), manifest)
    assert summary.by_status == {"attached": 15}
    snap = emulator.counters.snapshot()
    arrivals = snap["persons_arrivals"]
    assert len(arrivals) >= 30 and snap["responses_429"] == 0
    assert snap["max_persons_per_1s"] <= 10 and max_in_window(arrivals, 1.0) <= 10


@UNCAPPED
async def test_an_expired_key_fails_alone_and_the_next_run_uploads_it_again(
        emulator: Emulator, settings_for: SettingsFor, tmp_path: Path) -> None:
    manifest = _photos(tmp_path / "photos", ["Ann", "Ann", "Ann"])
    first = await runner.run_async(settings_for(emulator), manifest)  # uploaded, not attached
    keys = {r["id"]: r["thumbnail_key"] for r in pq.read_table(first.results_path).to_pylist()}
    emulator.objects[keys["q001"]].uploaded_at -= 24 * 3600  # this one key expired server-side
    summary = await runner.run_async(settings_for(emulator, attach=True), manifest)
    rows = {r["id"]: r for r in pq.read_table(summary.results_path).to_pylist()}
    assert rows["q001"]["status"] == "failed" and rows["q001"]["reason"] == "attach_failed"
    assert rows["q001"]["detail"].startswith(KEY_GONE) and keys["q001"] in rows["q001"]["detail"]
    assert rows["q000"]["status"] == rows["q002"]["status"] == "attached"  # the others went on without it
    again = await runner.run_async(settings_for(emulator, attach=True), manifest)
    rows = {r["id"]: r for r in pq.read_table(again.results_path).to_pylist()}
    assert again.planned.get("expired") == 1 and again.exit_code == 0
    assert rows["q001"]["status"] == "attached" and rows["q001"]["thumbnail_key"] != keys["q001"]
    ann = next(iter(emulator.persons.values()))
    assert ann.keys == [keys["q000"], keys["q002"], rows["q001"]["thumbnail_key"]]
