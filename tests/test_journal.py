"""The journal: keyed by row key, one state machine, orphans derived in one place, upgraded in place."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, JournalMismatchError, JournalStateError, LocalWriteError
from pipeline.journal import Journal
from pipeline.journal.schema import SCHEMA_VERSION
from pipeline.journal.states import TRANSITIONS, Prior, check, orphans_of
from pipeline.models import RowResult, Status

FIXTURES = Path(__file__).parent / "fixtures"


def uploaded(key: str, thumb: str, **kw: object) -> RowResult:
    return RowResult(0, key, Status.UPLOADED, thumbnail_key=thumb, source_sha256="s" * 64, attempts=1,
                     uploaded_at="2026-11-29T00:00:00.000+00:00", **kw)  # type: ignore[arg-type]


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal.open(tmp_path / "j.sqlite", workspace="ws")
    yield j  # type: ignore[misc]
    j.close()


def test_records_round_trip_every_field(journal: Journal) -> None:
    r = uploaded("photos/a.jpg", "ws/a.jpg", action="resized", width=300, height=400, bytes=1234,
                 duplicate_of="other", source_stamp="12:34")
    journal.mark_presigned(r.key, "ws/a.jpg", source_sha256=r.source_sha256, source_stamp="12:34")
    journal.record(r)
    got = journal.records(["photos/a.jpg", "absent"])
    assert list(got) == ["photos/a.jpg"]
    assert got["photos/a.jpg"] == r
    entry = journal.lookup(["photos/a.jpg"])["photos/a.jpg"]
    assert (entry.status, entry.source_stamp, entry.thumbnail_key) == (Status.UPLOADED, "12:34", "ws/a.jpg")
    assert journal.orphans() == []


def test_an_uploaded_row_never_takes_another_key(journal: Journal) -> None:
    journal.record(uploaded("k", "ws/1.jpg"))
    journal.record(uploaded("k", "ws/1.jpg"))  # the same record again is harmless
    with pytest.raises(JournalStateError):
        journal.record(uploaded("k", "ws/2.jpg"))
    with pytest.raises(JournalStateError):
        journal.mark_presigned("k", "ws/3.jpg")
    with pytest.raises(JournalStateError):
        journal.record(RowResult(0, "k", Status.REJECTED, reason="too_small"))
    assert journal.records(["k"])["k"].thumbnail_key == "ws/1.jpg"


def test_orphans_are_derived_from_transitions(journal: Journal) -> None:
    journal.mark_presigned("a", "ws/a1")
    journal.mark_presigned("a", "ws/a2")  # a newer round supersedes the first key
    journal.record(uploaded("a", "ws/a2"))
    journal.mark_presigned("b", "ws/b1")
    journal.record(RowResult(0, "b", Status.FAILED, reason="upload_failed"))  # ended without its key
    journal.mark_presigned("c", "ws/c1")
    journal.record(RowResult(0, "c", Status.FAILED, reason="confirm_failed", thumbnail_key="ws/c1"))
    journal.mark_presigned("d", "ws/d1")
    assert journal.reset_inflight() == 1  # a stopped run's row in flight
    journal.record(uploaded("e", "ws/e1"))  # no orphan: the journal never saw another key for it
    journal.reopen("a")  # its source changed
    got = {(o.key, o.thumbnail_key, o.reason) for o in journal.orphans()}
    assert got == {("a", "ws/a1", "superseded"), ("b", "ws/b1", "abandoned"), ("c", "ws/c1", "failed"),
                   ("d", "ws/d1", "interrupted"), ("a", "ws/a2", "replaced")}
    assert journal.lookup(["a"])["a"].status is Status.PENDING
    journal.record(uploaded("a", "ws/a3"))  # the changed row gets its new key
    assert journal.counts()["uploaded"] == 2


def test_transition_table_is_what_check_enforces() -> None:
    for source in [None, *Status]:
        prior = Prior(source, "ws/x") if source is not None else None
        for target in Status:
            keeps = target in (Status.UPLOADED, Status.ATTACHED) or (source, target) in (
                (Status.UPLOADED, Status.FAILED), (Status.UPLOADED, Status.REJECTED))
            thumb = "ws/x" if keeps else None
            if target in TRANSITIONS.get(source, frozenset()):
                check("k", prior, target, thumb)
            else:
                with pytest.raises(JournalStateError):
                    check("k", prior, target, thumb)


def test_a_row_rejected_person_full_after_its_upload_keeps_its_key_until_replaced() -> None:
    held = Prior(Status.UPLOADED, "ws/x")
    check("k", held, Status.REJECTED, "ws/x")
    with pytest.raises(JournalStateError):
        check("k", held, Status.REJECTED, None)  # dropping the key would lose it silently
    rejected = Prior(Status.REJECTED, "ws/x")
    check("k", rejected, Status.ATTACHED, "ws/x")  # a later run with room attaches the same key
    assert orphans_of(held, Status.REJECTED, "ws/x") == []
    assert orphans_of(rejected, Status.PENDING, None) == [("ws/x", "unattached")]  # source changed
    assert orphans_of(rejected, Status.PRESIGNED, "ws/y") == [("ws/x", "unattached")]  # key too old


def test_only_finished_rows_are_recorded(journal: Journal) -> None:
    with pytest.raises(ValueError, match="only finished"):
        journal.record(RowResult(0, "k", Status.PRESIGNED))
    with pytest.raises(ValueError, match="no thumbnail_key"):
        journal.record(RowResult(0, "k", Status.UPLOADED))


def test_restamp_keeps_the_key(journal: Journal) -> None:
    journal.record(uploaded("k", "ws/1", source_stamp="1:1"))
    journal.restamp("k", "1:2")
    assert journal.lookup(["k"])["k"].source_stamp == "1:2"
    assert journal.records(["k"])["k"].thumbnail_key == "ws/1"


def test_find_by_sha256_prefers_an_uploaded_row(journal: Journal) -> None:
    journal.mark_presigned("a", "ws/a", source_sha256="x" * 64)
    journal.record(RowResult(0, "b", Status.UPLOADED, thumbnail_key="ws/b", source_sha256="x" * 64))
    assert journal.find_by_sha256("x" * 64) == ("b", "ws/b")
    assert journal.find_by_sha256("y" * 64) is None


def test_lookup_many_keys(journal: Journal) -> None:
    journal.record_many([RowResult(0, f"k{i}", Status.REJECTED, reason="too_small") for i in range(1800)])
    keys = [f"k{i}" for i in range(0, 2000, 3)]
    found = journal.lookup(keys)
    assert len(found) == len([k for k in keys if int(k[1:]) < 1800])


def test_second_run_on_the_same_journal_is_refused(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.sqlite", workspace="ws"), pytest.raises(ConfigError, match="held by run pid"):
        Journal.open(tmp_path / "j.sqlite", workspace="ws")


def test_workspace_rules(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path, workspace="typo"):
        pass
    with Journal.open(path, workspace="ws") as j:  # no key under the mistyped name: adopted
        j.record(uploaded("k", "ws/1"))
    with pytest.raises(JournalMismatchError, match="workspace 'ws'"):
        Journal.open(path, workspace="other")


def test_foreign_and_newer_databases_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.sqlite"
    with closing(sqlite3.connect(foreign)) as c:
        c.execute("CREATE TABLE people (name TEXT)")
    with pytest.raises(ConfigError, match="other tables"):
        Journal.open(foreign, workspace="ws")
    newer = tmp_path / "newer.sqlite"
    with Journal.open(newer, workspace="ws"):
        pass
    c = sqlite3.connect(newer)
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    c.close()
    with pytest.raises(ConfigError, match="newer release"):
        Journal.open(newer, workspace="ws")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match="not a usable journal"):
        Journal.open(garbage, workspace="ws")


def _sha(i: int) -> str:
    return hashlib.sha256(f"photo-{i}".encode()).hexdigest()


def test_a_journal_written_by_the_first_release_is_upgraded_in_place(tmp_path: Path) -> None:
    """tests/fixtures/journal_v1.sqlite was written by the first release's code (rows keyed by position,
    manifest without ids): rows 0-1 uploaded, 2 rejected, 3 failed, 4 left presigned."""
    path = tmp_path / "j.sqlite"
    shutil.copy(FIXTURES / "journal_v1.sqlite", path)
    with Journal.open(path, workspace="ws") as j:
        assert j.migrated_from == 1 and j.has_legacy
        assert j.counts()["uploaded"] == 2 and j.counts()["presigned"] == 1
        assert j.reset_inflight() == 1
        assert {(o.key, o.thumbnail_key, o.reason) for o in j.orphans()} == {
            ("1", "ws/k1a.jpg", "superseded"), ("4", "ws/k4.jpg", "interrupted")}
        # The manifest had no id: rows are now keyed by path. Row 0's content proves it is the same row.
        assert j.adopt_legacy(0, _sha(1), "photos/a.jpg") is None  # wrong content: not adopted
        adopted = j.adopt_legacy(0, _sha(0), "photos/a.jpg")
        assert adopted is not None and adopted.thumbnail_key == "ws/k0.jpg"
        assert j.records(["photos/a.jpg"])["photos/a.jpg"].thumbnail_key == "ws/k0.jpg"
        assert j.lookup(["0"]) == {}
        assert j.adopt_legacy(2, _sha(2), "photos/c.jpg") is None  # only uploaded rows are adopted
    c = sqlite3.connect(path)
    assert c.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    indexes = {name for (name,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"rows_sha256", "rows_inflight", "rows_legacy"} <= indexes
    c.close()
    with Journal.open(path, workspace="ws") as j:  # opening again: already current
        assert j.migrated_from == 0


def test_a_full_disk_is_one_sentence_and_keeps_what_was_committed(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path, workspace="ws") as j:
        j.record(uploaded("kept", "ws/kept"))
        # A database that may not grow stands in for a full disk: SQLite answers SQLITE_FULL either way.
        (pages,) = j._conn.execute("PRAGMA page_count").fetchone()
        j._conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(LocalWriteError, match="could not be written"):
            j.record_many([RowResult(0, f"k{i}" * 50, Status.REJECTED, reason="x" * 500) for i in range(2000)])
    with Journal.open(path, workspace="ws") as j:
        assert j.records(["kept"])["kept"].thumbnail_key == "ws/kept"
        assert j.counts()["rejected"] == 0


def test_scratch_copy_leaves_the_real_journal_alone(tmp_path: Path) -> None:
    real = tmp_path / "real.sqlite"
    with Journal.open(real, workspace="ws") as j:
        j.record(uploaded("k", "ws/1"))
    with Journal.scratch(real, tmp_path / "copy.sqlite", workspace="ws") as copy:
        assert copy.records(["k"])["k"].thumbnail_key == "ws/1"
        copy.record(RowResult(0, "new", Status.SKIPPED))
    with Journal.open(real, workspace="ws") as j:
        assert j.lookup(["new"]) == {}
    with Journal.scratch(tmp_path / "absent.sqlite", tmp_path / "copy2.sqlite", workspace="ws") as empty:
        assert empty.counts()["uploaded"] == 0
    assert not (tmp_path / "absent.sqlite").exists()


def test_a_journal_closed_cleanly_is_not_checked_page_by_page_again_until_it_changes(tmp_path: Path) -> None:
    """``quick_check`` reads every page (most of a nightly no-op's cost): a journal exactly as a run closed it
    skips it; one changed since (here: a page of zeros, which moves its stamp) is checked and refused."""
    from pipeline.journal import Journal
    from pipeline.journal.opening import known_intact

    path = tmp_path / "j.sqlite"
    with Journal.open(path, workspace="ws") as journal:
        journal.record_many([RowResult(0, f"k{i}", Status.REJECTED, reason="too_small") for i in range(3000)])
    assert known_intact(path)
    with Journal.open(path, workspace="ws"):
        assert not known_intact(path)  # open: its WAL is there
    assert known_intact(path)
    with path.open("r+b") as fh:  # a page of zeros in the middle of the file
        fh.seek(4096 * 8)
        fh.write(b"\0" * 4096)
    assert not known_intact(path)
    with pytest.raises(ConfigError, match="damaged"):
        Journal.open(path, workspace="ws")


def test_a_note_left_by_a_release_writing_other_states_does_not_skip_the_states_check(tmp_path: Path) -> None:
    """The ``.checked`` note spares a re-open the page and states checks only when the release that wrote it
    writes the same states: a newer release's journal (here: a state this one never writes, and a note naming
    that release's states) is still refused in one sentence."""
    import contextlib
    import sqlite3

    from pipeline.journal import Journal
    from pipeline.journal.opening import _file_stamp, known_intact

    path = tmp_path / "j.sqlite"
    with Journal.open(path, workspace="ws") as journal:
        journal.record_many([RowResult(0, "k0", Status.REJECTED, reason="too_small")])
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE rows SET status = 'archived' WHERE key = 'k0'")
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (tmp_path / "j.sqlite-wal").unlink(missing_ok=True)
    stamp = _file_stamp(path)
    assert stamp is not None
    note = tmp_path / "j.sqlite.checked"
    note.write_text(stamp.split(" ")[0] + " archived," + stamp.split(" ")[1] + "\n", encoding="ascii")
    assert not known_intact(path)
    with pytest.raises(ConfigError, match=r"never writes \('archived'\)"):
        Journal.open(path, workspace="ws")
    (tmp_path / "j.sqlite-wal").unlink(missing_ok=True)
    now = _file_stamp(path)
    assert now is not None and now.split(" ")[1] == stamp.split(" ")[1]
    note.write_text(now + "\n", encoding="ascii")  # a note naming this release's own states is trusted
    assert known_intact(path)
