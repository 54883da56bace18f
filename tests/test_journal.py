"""The SQLite journal: resume semantics, orphans, the no-double-upload guard, durability."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError, JournalMismatchError
from pipeline.journal import Journal, JournalStateError, Orphan
from pipeline.models import RowResult, Status

ROWS = 10


def open_journal(path: Path, *, fingerprint: str = "f1", workspace: str = "ws", rows: int = ROWS) -> Journal:
    return Journal.open(path, fingerprint=fingerprint, rows=rows, workspace=workspace, manifest_name="m.csv")


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with open_journal(tmp_path / "j.sqlite") as j:
        yield j


def up(i: int, key: str = "") -> RowResult:
    return RowResult(
        i,
        f"k{i}",
        Status.UPLOADED,
        key or f"tk{i}",
        attempts=1,
        source_sha256=f"sha{i}",
        uploaded_at="2026-01-01T00:00:00Z",
    )


def rejected(i: int) -> RowResult:
    return RowResult(i, f"k{i}", Status.REJECTED, reason="not_found", detail="no such file")


def failed(i: int, key: str | None = None) -> RowResult:
    return RowResult(i, f"k{i}", Status.FAILED, key, reason="upload_failed", detail="503", attempts=4)


def reasons(j: Journal) -> list[tuple[int, str, str]]:
    return [(o.index, o.thumbnail_key, o.reason) for o in j.orphans()]


def test_create_then_reopen_keeps_state(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "j.sqlite"
    with open_journal(path) as j:
        assert j.resume_info().created
        j.record(up(0))
        j.record_many([rejected(1), rejected(2)])
    with open_journal(path) as j:
        info = j.resume_info()
        assert not info.created and info.inflight == 0 and info.orphans == 0
        assert info.counts == {
            "pending": 7,
            "presigned": 0,
            "uploaded": 1,
            "rejected": 2,
            "failed": 0,
            "skipped": 0,
        }


def test_wal_mode_is_on(journal: Journal, tmp_path: Path) -> None:
    conn = journal._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    journal.record(up(0))
    assert (tmp_path / "j.sqlite-wal").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"fingerprint": "other"},
            r"^The journal .*j\.sqlite belongs to another manifest \(made for m\.csv with 10 "
            r"rows; .*\); use a new --journal path or the original manifest\.$",
        ),
        (
            {"workspace": "prod"},
            r"belongs to workspace 'ws', not 'prod'; use a new --journal path or --workspace ws\.",
        ),
    ],
)
def test_a_journal_of_another_manifest_or_workspace_is_refused(
    tmp_path: Path, kwargs: dict[str, str], message: str
) -> None:
    with open_journal(tmp_path / "j.sqlite") as j:
        j.mark_presigned(0, "0", "ws/abc/a.jpg")  # a key issued in 'ws' binds the journal to it
    with pytest.raises(JournalMismatchError, match=message):
        open_journal(tmp_path / "j.sqlite", **kwargs)  # type: ignore[arg-type]


def test_not_a_database_and_in_use_are_config_errors(tmp_path: Path, journal: Journal) -> None:
    (tmp_path / "junk.sqlite").write_bytes(b"this is not sqlite, not at all" * 100)
    with pytest.raises(ConfigError, match="is not a usable journal"):
        open_journal(tmp_path / "junk.sqlite")
    with sqlite3.connect(tmp_path / "app.db") as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    conn.close()
    with pytest.raises(ConfigError, match=r"is not a usable journal \(it holds other tables\)"):
        open_journal(tmp_path / "app.db")
    with sqlite3.connect(tmp_path / "app.db") as conn:
        assert [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == [
            "users"
        ]
    conn.close()
    with pytest.raises(ConfigError, match="is in use by another run or program"):
        open_journal(tmp_path / "j.sqlite")  # the fixture holds it
    journal.record(up(1))  # the refused second open did not disturb the first


def test_done_indices_with_and_without_retry_failed(journal: Journal) -> None:
    journal.record(up(0))
    journal.record_many([rejected(1), failed(2), RowResult(3, "k3", Status.SKIPPED, reason="dry_run")])
    journal.mark_presigned(4, "k4", "tk4")
    assert journal.done_indices(0, ROWS, retry_failed=True) == {0, 1, 3}
    assert journal.done_indices(0, ROWS, retry_failed=False) == {0, 1, 2, 3}
    assert journal.done_indices(1, 3, retry_failed=False) == {1, 2}
    assert journal.done_indices(5, ROWS, retry_failed=False) == set()


def test_inflight_rows_become_orphans_and_pending_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with open_journal(path) as j:
        j.mark_presigned(0, "k0", "tk0")
        j.record(up(1))
        j.mark_presigned(2, "k2", "tk2")  # the run dies here: PUT maybe done, never confirmed
    with open_journal(path) as j:
        assert j.resume_info().inflight == 2
        assert j.mark_orphans_from_inflight() == 2
        assert reasons(j) == [(0, "tk0", "interrupted"), (2, "tk2", "interrupted")]
        assert j.counts()["presigned"] == 0 and j.counts()["pending"] == 9
        assert j.done_indices(0, ROWS, retry_failed=True) == {1}
        assert j.mark_orphans_from_inflight() == 0
        j.mark_presigned(0, "k0", "tk0b")  # the redo gets a fresh key, no new orphan
        j.record(up(0, "tk0b"))
        assert [o.reason for o in j.orphans()] == ["interrupted", "interrupted"]


def test_keys_that_were_not_kept_become_orphans(journal: Journal) -> None:
    journal.mark_presigned(0, "k0", "a")
    journal.mark_presigned(0, "k0", "b")  # a retry presigned again
    journal.record(up(0, "b"))
    journal.mark_presigned(1, "k1", "c")
    journal.record(failed(1))
    journal.mark_presigned(2, "k2", "d")
    journal.record(failed(2, "d"))  # e.g. confirm failed after the PUT
    journal.mark_presigned(3, "k3", "e")
    journal.record(up(3, "f"))
    journal.add_orphan(4, "g", "retried")
    journal.add_orphan(4, "g", "retried")  # repeats are ignored
    assert reasons(journal) == [
        (0, "a", "superseded"),
        (1, "c", "abandoned"),
        (2, "d", "failed"),
        (3, "e", "superseded"),
        (4, "g", "retried"),
    ]
    assert all(isinstance(o, Orphan) and o.recorded_at.endswith("Z") for o in journal.orphans())


def test_an_uploaded_row_is_never_given_another_key(journal: Journal) -> None:
    journal.mark_presigned(0, "k0", "tk0")
    journal.record(up(0))
    journal.record(up(0))  # the identical record again is harmless
    with pytest.raises(JournalStateError, match="already uploaded as tk0"):
        journal.mark_presigned(0, "k0", "tk9")
    with pytest.raises(JournalStateError, match="already uploaded as tk0"):
        journal.record(up(0, "tk9"))
    with pytest.raises(JournalStateError):
        journal.record(failed(0))
    assert next(journal.results(1)).thumbnail_key == "tk0"


def test_record_many_is_all_or_nothing(journal: Journal) -> None:
    journal.record(up(5))
    with pytest.raises(JournalStateError):
        journal.record_many([rejected(4), rejected(5), rejected(6)])
    assert journal.counts()["rejected"] == 0
    with pytest.raises(ValueError, match="only finished rows"):
        journal.record_many([rejected(1), RowResult(2, "k2", Status.PRESIGNED)])
    with pytest.raises(ValueError, match="no thumbnail_key"):
        journal.record(RowResult(3, "k3", Status.UPLOADED))
    assert journal.counts()["rejected"] == 0
    journal.record_many([])


def test_failed_rows_can_be_retried_then_uploaded(journal: Journal) -> None:
    journal.record(failed(0))
    journal.mark_presigned(0, "k0", "tk0")
    journal.record(up(0))
    assert next(journal.results(1)).status is Status.UPLOADED and journal.orphans() == []


def test_results_are_in_order_with_gaps_as_pending(journal: Journal) -> None:
    journal.record_many([rejected(7), rejected(2)])
    journal.record(up(4))
    journal.mark_presigned(5, "k5", "tk5")
    got = list(journal.results(ROWS))
    assert [r.index for r in got] == list(range(ROWS))
    assert [r.status.value for r in got][:8] == [
        "pending",
        "pending",
        "rejected",
        "pending",
        "uploaded",
        "presigned",
        "pending",
        "rejected",
    ]
    assert got[4] == up(4) and got[2] == rejected(2) and got[0].key == ""
    assert [r.index for r in journal.results(3)] == [0, 1, 2]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 39), unique=True, max_size=40), st.integers(1, 7))
def test_results_order_property(
    tmp_path_factory: pytest.TempPathFactory, indices: list[int], chunk: int
) -> None:
    path = tmp_path_factory.mktemp("j") / "j.sqlite"
    with open_journal(path, rows=40) as j:
        for start in range(0, len(indices), chunk):  # recorded in arbitrary order, in arbitrary groups
            j.record_many([up(i) if i % 3 else rejected(i) for i in indices[start : start + chunk]])
        got = list(j.results(40))
    assert [r.index for r in got] == list(range(40))
    assert {r.index for r in got if r.status is not Status.PENDING} == set(indices)
    assert all(r == (up(r.index) if r.index % 3 else rejected(r.index)) for r in got if r.index in indices)


def test_find_by_sha256(journal: Journal) -> None:
    assert journal.find_by_sha256("sha3") is None
    journal.mark_presigned(3, "k3", "tk3", source_sha256="same")
    assert journal.find_by_sha256("same") == ("k3", None)
    journal.record(RowResult(3, "k3", Status.UPLOADED, "tk3", source_sha256="same"))
    journal.record(RowResult(1, "k1", Status.REJECTED, reason="too_small", source_sha256="same"))
    journal.record(RowResult(6, "k6", Status.UPLOADED, "tk6", source_sha256="same"))
    assert journal.find_by_sha256("same") == ("k3", "tk3")


def test_nothing_secret_is_stored(journal: Journal) -> None:
    columns = {row[1] for row in journal._conn.execute("PRAGMA table_info(rows)")}
    assert not {c for c in columns if "url" in c or "sign" in c}


def test_committed_rows_survive_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from pipeline.journal import Journal
        from pipeline.models import RowResult, Status
        j = Journal.open(Path({str(path)!r}), fingerprint="f1", rows={ROWS}, workspace="ws",
                         manifest_name="m.csv")
        j.record(RowResult(0, "k0", Status.UPLOADED, "tk0"))
        j.record_many([RowResult(i, f"k{{i}}", Status.REJECTED, reason="not_found") for i in (1, 2)])
        j.mark_presigned(3, "k3", "tk3")
        j._conn.execute("BEGIN IMMEDIATE")
        j._conn.execute("UPDATE rows SET status = 'failed' WHERE idx = 0")  # never committed
        os._exit(9)  # no close, no checkpoint, no atexit
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 9, done.stderr
    assert (tmp_path / "j.sqlite-wal").stat().st_size > 0  # the commits live only in the WAL so far
    with open_journal(path) as j:
        assert j.counts() == {
            "pending": 6,
            "presigned": 1,
            "uploaded": 1,
            "rejected": 2,
            "failed": 0,
            "skipped": 0,
        }
        assert j.mark_orphans_from_inflight() == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_journal_without_any_key_follows_a_corrected_workspace(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path, fingerprint="f", rows=2, workspace="typo", manifest_name="m") as j:
        j.record(RowResult(0, "0", Status.REJECTED, reason="too_small", detail="small"))
    with Journal.open(path, fingerprint="f", rows=2, workspace="right", manifest_name="m") as j:
        j.mark_presigned(1, "1", "right/abc/x.jpg")
    # Now a key issued in 'right' is recorded: the journal is bound to that workspace for good.
    with pytest.raises(JournalMismatchError, match="belongs to workspace 'right'"):
        Journal.open(path, fingerprint="f", rows=2, workspace="other", manifest_name="m")


def test_done_count_matches_done_indices(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.sqlite", fingerprint="f", rows=5, workspace="w", manifest_name="m") as j:
        j.record_many([RowResult(0, "0", Status.REJECTED, reason="too_small"),
                       RowResult(1, "1", Status.FAILED, reason="upload_failed")])
        j.mark_presigned(2, "2", "w/k/a.jpg")
        j.record(RowResult(2, "2", Status.UPLOADED, thumbnail_key="w/k/a.jpg"))
        for retry in (True, False):
            assert j.done_count(retry_failed=retry) == len(j.done_indices(0, 5, retry_failed=retry))
        assert j.done_count(retry_failed=True) == 2 and j.done_count(retry_failed=False) == 3
