"""The journal's attach side (schema 3): the upgrade from version 2, attached rows, attach failures that keep
their key, intents and persons written with the rows in one transaction."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from pipeline.errors import JournalStateError
from pipeline.journal import AttachIntent, Journal, KnownPerson
from pipeline.journal.schema import SCHEMA_VERSION
from pipeline.models import RowResult, Status
from pipeline.result_fields import RESULT_FIELDS

FIXTURES = Path(__file__).parent / "fixtures"
ANN = KnownPerson("name:Ann", "1001", True)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal.open(tmp_path / "j.sqlite", workspace="ws")
    yield j  # type: ignore[misc]
    j.close()


def uploaded(key: str, thumb: str) -> RowResult:
    return RowResult(0, key, Status.UPLOADED, thumbnail_key=thumb, attempts=1,
                     uploaded_at="2026-11-29T00:00:00.000+00:00")


def test_a_version_2_journal_is_upgraded_in_place(tmp_path: Path) -> None:
    """tests/fixtures/journal_v2.sqlite was written by the code before ``--attach``: a uploaded, b failed
    (its presigned key an orphan), c rejected."""
    path = tmp_path / "j.sqlite"
    shutil.copy(FIXTURES / "journal_v2.sqlite", path)
    with Journal.open(path, workspace="demo") as j:
        assert j.migrated_from == 2
        assert {k: e.status for k, e in j.lookup(["a", "b", "c"]).items()} == {
            "a": Status.UPLOADED, "b": Status.FAILED, "c": Status.REJECTED}
        assert [o.reason for o in j.orphans()] == ["abandoned"]
        assert j.intents() == [] and j.known_persons() == {}
        done = j.mark_attached(["a"], ANN, "2026-11-29T09:00:00.000+00:00")
        assert done[0].thumbnail_key == "demo/k/a.jpg" and done[0].source_stamp == "1:1"
        assert j.records(["a"])["a"].person_id == "1001"
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (4,)
        columns = [name for (_, name, *_rest) in db.execute("PRAGMA table_info(rows)")]
        assert {f.name for f in RESULT_FIELDS} <= set(columns)
    with Journal.open(path, workspace="demo") as j:
        assert j.migrated_from == 0 and j.known_persons() == {"name:Ann": ANN}


def test_the_first_releases_journal_goes_to_version_3(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    shutil.copy(FIXTURES / "journal_v1.sqlite", path)
    with Journal.open(path, workspace="ws") as j:
        assert j.migrated_from == 1 and j.counts()["uploaded"] == 2 and j.intents() == []


def test_an_intent_ends_with_its_rows_in_one_transaction(journal: Journal) -> None:
    journal.record(uploaded("r1", "ws/1"))
    journal.record(uploaded("r2", "ws/2"))
    intent = AttachIntent("i1", "create", "name:Ann", None, ("r1", "r2"), ("ws/1", "ws/2"), 0)
    journal.intend(intent)
    assert journal.intents() == [intent]
    journal.mark_attached(["r1", "r2"], ANN, "2026-11-29T09:00:00.000+00:00", intent="i1")
    assert journal.intents() == [] and journal.counts()["attached"] == 2
    assert journal.orphans() == []


def test_a_failed_attach_keeps_its_key_and_is_not_an_orphan(journal: Journal) -> None:
    journal.record(uploaded("r1", "ws/1"))
    journal.intend(AttachIntent("i1", "add", "id:7", "7", ("r1",), ("ws/1",), 3))
    failed = journal.mark_attach_failed(["r1"], "add_rejected: expired", intent="i1")
    assert failed[0].status is Status.FAILED and failed[0].thumbnail_key == "ws/1"
    assert failed[0].reason == "attach_failed" and journal.intents() == [] and journal.orphans() == []
    journal.mark_attach_failed(["r1"], "again")  # a re-run's attach fails again: still not an orphan
    assert journal.orphans() == []
    journal.mark_attached(["r1"], KnownPerson("id:7", "7", False), "2026-11-29T09:00:00.000+00:00")
    assert journal.lookup(["r1"])["r1"].status is Status.ATTACHED


def test_an_attached_row_keeps_its_key_until_reopened_and_its_old_key_is_superseded(journal: Journal) -> None:
    journal.record(uploaded("r1", "ws/1"))
    journal.mark_attached(["r1"], ANN, "2026-11-29T09:00:00.000+00:00")
    with pytest.raises(JournalStateError):
        journal.record(RowResult(0, "r1", Status.ATTACHED, thumbnail_key="ws/other"))
    with pytest.raises(JournalStateError):  # never straight to a new key: only through a reopen
        journal.mark_presigned("r1", "ws/2")
    journal.reopen("r1")  # its source or person changed: the old key stays with its person
    assert [(o.thumbnail_key, o.reason) for o in journal.orphans()] == [("ws/1", "superseded")]
    journal.mark_presigned("r1", "ws/2")
    journal.record(uploaded("r1", "ws/2"))
    assert journal.lookup(["r1"])["r1"].thumbnail_key == "ws/2"


def test_each_write_says_which_run_made_it_and_what_it_did(journal: Journal) -> None:
    journal.run_id = "run-1"
    journal.record(uploaded("r1", "ws/1"))
    journal.record(RowResult(0, "r2", Status.REJECTED, reason="too_small"))
    first = journal.records(["r1", "r2"])
    assert (first["r1"].run_id, first["r1"].this_run) == ("run-1", "uploaded")
    assert (first["r2"].run_id, first["r2"].this_run) == ("run-1", "rejected")
    journal.run_id = "run-2"
    journal.restamp("r1", "9:9", "photos/r1.jpg")  # content shown unchanged: a new stamp only
    journal.record(RowResult(0, "r2", Status.REJECTED, reason="too_small"))
    journal.mark_attached(["r1"], ANN, "2026-11-29T09:00:00.000+00:00")
    again = journal.records(["r1", "r2"])
    assert (again["r1"].run_id, again["r1"].this_run) == ("run-2", "attached")
    assert again["r1"].source_path == "photos/r1.jpg" and again["r1"].source_stamp == "9:9"
    assert (again["r2"].run_id, again["r2"].this_run) == ("run-2", "rechecked")


def test_a_failed_attach_uploaded_again_orphans_its_old_key_as_expired(journal: Journal) -> None:
    journal.record(uploaded("r1", "ws/1"))
    journal.mark_attach_failed(["r1"], "expired")
    journal.mark_presigned("r1", "ws/2")
    assert [(o.thumbnail_key, o.reason) for o in journal.orphans()] == [("ws/1", "expired")]
