"""``--attach`` on day two (issue "Day two"; "Hardening": per-row faults stay per-row): person calls only for
work, made beside the first uploads; names normalised; names the API cannot take refused per row."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from attach_archive import make_archive, seed
from helpers import write_manifest
from structlog.testing import capture_logs

from pipeline import runner
from pipeline.config import Settings
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.emulator.state import PERSON_ROUTES
from pipeline.samples import make_jpeg

pytestmark = pytest.mark.parametrize(
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


async def test_a_run_with_nothing_to_attach_makes_no_person_call(emulator: Emulator, settings_for: SettingsFor,
                                                                  tmp_path: Path) -> None:
    existing_id = await seed(emulator)
    archive = make_archive(tmp_path / "photos", existing_id)
    first = await runner.run_async(settings_for(emulator, attach=True), archive.manifest)
    assert first.exit_code == 0 and first.by_reason == {"person_full": 10}
    before = _person_calls(emulator)
    again = await runner.run_async(settings_for(emulator, attach=True), archive.manifest)
    # Every row is attached, or rejected person_full (which never causes a look-up): nothing to ask.
    assert again.exit_code == 0 and again.by_reason == {"person_full": 10}
    assert _person_calls(emulator) == before


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


async def test_names_differing_only_by_spaces_or_zero_width_characters_are_one_person(
        emulator: Emulator, settings_for: SettingsFor, tmp_path: Path) -> None:
    manifest = _photos(tmp_path / "photos", ["Alice", "Alice ", "Alice\u200b", " Alice\ufeff", "Bob"])
    with capture_logs() as events:
        summary = await runner.run_async(settings_for(emulator, attach=True), manifest)
    assert summary.by_status == {"attached": 5}
    assert sorted((p.name, len(p.keys)) for p in emulator.persons.values()) == [("Alice", 4), ("Bob", 1)]
    warned = [e for e in events if e["event"] == "person_names_normalised"]
    assert len(warned) == 1 and warned[0]["names"] == 3 and warned[0]["log_level"] == "warning"
