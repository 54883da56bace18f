"""Orphans are named by the journal alone, from its own transitions: every key a real run was given and did not
keep is in the journal's orphans exactly once, with a reason ``states.orphans_of`` gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import MakeEmulator, photo_manifest

from pipeline import runner
from pipeline.emulator import EmulatorConfig, Faults
from pipeline.journal import Journal
from pipeline.models import RowResult, Status
from pipeline.python_api import make_settings

DERIVED = {"superseded", "interrupted", "abandoned", "failed", "replaced", "expired", "unattached"}


async def test_every_key_a_run_did_not_keep_is_a_journal_orphan(tmp_path: Path,
                                                                 make_emulator: MakeEmulator) -> None:
    # Half the URLs are expired when used: rows take several rounds, each with a new key.
    emu = await make_emulator(EmulatorConfig(rate=0, confirm_rate=0,
                                             faults=Faults(early_expiry_rate=0.5, seed=11)))
    manifest = photo_manifest(tmp_path, 24, manifest=tmp_path / "manifest.csv")
    journal_path = tmp_path / "j.sqlite"
    settings = make_settings(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
                             rate=0.0, confirm_rate=0.0, progress=False, journal=journal_path,
                             out=tmp_path / "r.parquet", max_row_attempts=3)
    summary = await runner.run_async(settings, manifest)
    assert summary.by_status.get("uploaded", 0) > 0
    with Journal.open(journal_path, workspace=emu.workspace) as j:
        kept = {r.thumbnail_key for r in j.records([f"k{i}" for i in range(24)]).values()}
        orphans = j.orphans()
    issued = set(emu.issued_by_key)
    assert len(issued) > 24  # some rows took more than one round
    assert [o.thumbnail_key for o in orphans if o.thumbnail_key in kept] == []
    assert sorted(o.thumbnail_key for o in orphans) == sorted(issued - kept)  # each once, none missing
    assert {o.reason for o in orphans} <= DERIVED
    assert set(emu.objects) - kept <= {o.thumbnail_key for o in orphans}


def test_callers_no_longer_name_orphans(tmp_path: Path) -> None:
    """The journal takes no orphan from its callers: the client's given-up rounds are its own transitions."""
    with Journal.open(tmp_path / "j.sqlite", workspace="ws") as j:
        j.mark_presigned("e", "ws/e0")
        j.mark_presigned("e", "ws/e1")
        done = RowResult(0, "e", Status.UPLOADED, thumbnail_key="ws/e1", uploaded_at="2026-11-29T00:00:00.000Z")
        with pytest.raises(TypeError):
            j.record(done, retried=["ws/e0"])  # type: ignore[call-arg]
        j.record(done)
        assert [(o.thumbnail_key, o.reason) for o in j.orphans()] == [("ws/e0", "superseded")]
