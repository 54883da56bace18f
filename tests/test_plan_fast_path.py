"""The plan's fast path for a finished, unchanged row (``stages._untouched``) never disagrees with ``decide``:
whatever it leaves alone, ``decide`` leaves alone too (it only saves building a decision)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pipeline.fetch.refs import Problem, SourceRef
from pipeline.journal import Entry
from pipeline.models import Row, Status
from pipeline.runner.plan import decide, source_of
from pipeline.runner.stages import _untouched

STAMPS = st.sampled_from([None, "1:1", "2:2"])
PATHS = st.sampled_from([None, "/a/p.jpg", "/b/p.jpg"])


def _file(path: str) -> SourceRef:
    return SourceRef("file", "", path)


@given(status=st.sampled_from(list(Status)), stamp=STAMPS, journaled=STAMPS, was=PATHS,
       source=st.sampled_from(["/a/p.jpg", "/b/p.jpg", None]), key=st.sampled_from([None, "ws/k"]))
def test_the_fast_path_leaves_alone_only_what_decide_leaves_alone(
        status: Status, stamp: str | None, journaled: str | None, was: str | None, source: str | None,
        key: str | None) -> None:
    row = Row(0, "r1", "p.jpg", _file(source) if source else Problem("missing_path", "empty"))
    entry = Entry(status, key, None, "sha", journaled, None, None, was)
    if _untouched(row, (entry.status.value, entry.source_stamp, entry.source_path), stamp):
        assert decide(entry, stamp, retry_failed=True, path=source_of(row)).why is None


def test_the_fast_path_takes_the_common_case() -> None:
    row = Row(0, "r1", "p.jpg", _file("/a/p.jpg"))
    assert _untouched(row, ("uploaded", "1:1", "/a/p.jpg"), "1:1")
    assert _untouched(row, ("uploaded", "1:1", None), "1:1")  # a journal older than version 4
    assert not _untouched(row, ("uploaded", "1:1", "/b/p.jpg"), "1:1")
    assert not _untouched(row, ("uploaded", "1:2", "/a/p.jpg"), "1:1")
    assert not _untouched(row, ("attached", "1:1", "/a/p.jpg"), "1:1")
    assert not _untouched(row, None, "1:1")


def test_the_batch_stat_says_what_a_stat_of_each_full_path_says(tmp_path: Path) -> None:
    """``stamps.stat_rows`` stats by folder handle: every kind of path gives the stamp ``plan.stamp_of`` gives, and
    "missing" only for what is not there at all (a missing folder or file, a path through a file; not a dangling
    symlink, which the image stage names precisely)."""
    import os

    from pipeline.runner.plan import stamp_of
    from pipeline.runner.stamps import stat_rows

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name in ("a/1.jpg", "a/2.jpg", "b/1.jpg"):
        (tmp_path / name).write_bytes(name.encode() * 7)
    os.symlink(tmp_path / "a", tmp_path / "linked")
    os.symlink(tmp_path / "a" / "1.jpg", tmp_path / "b" / "to-1.jpg")
    os.symlink(tmp_path / "nowhere.jpg", tmp_path / "b" / "dangling.jpg")
    cases = {  # path -> missing altogether
        "a/1.jpg": False, "a/2.jpg": False, "b/1.jpg": False, "linked/2.jpg": False, "b/to-1.jpg": False,
        "a/absent.jpg": True, "gone/1.jpg": True, "gone/deeper/1.jpg": True, "b/dangling.jpg": False,
        "a/1.jpg/inside.jpg": True,
    }
    named = [*cases, "a/1.jpg"]  # the first file named again
    rows = tuple(Row(i, f"r{i}", p, _file(str(tmp_path / p))) for i, p in enumerate(named))
    rows += (Row(len(rows), "none", "", Problem("missing_path", "the path cell is empty")),)
    stamps, missing = stat_rows(rows)
    for row, stamp, gone in zip(rows, stamps, missing, strict=True):
        if row.source is None:
            assert (stamp, gone) == (None, False)
            continue
        assert stamp == stamp_of(row.source), row.path
        assert gone is cases[row.path], row.path
    assert stamps[0] is not None and stamps[0] == stamps[-2]  # one file named twice
    assert stamps[1] != stamps[0]  # another size


def test_a_file_named_in_several_batches_is_stat_ed_once_a_run(tmp_path: Path) -> None:
    """The plan hands ``stamps.stat_rows`` the files it has seen this run: a photo named again in a later batch is
    not stat'ed again (here: removed in between, it still has the stamp it had), and a new one is."""
    from pipeline.runner.stamps import stat_rows

    (tmp_path / "p.jpg").write_bytes(b"x" * 10)
    (tmp_path / "q.jpg").write_bytes(b"y" * 20)
    seen: dict[str, tuple[str | None, bool]] = {}
    first, _ = stat_rows((Row(0, "a", "p.jpg", _file(str(tmp_path / "p.jpg"))),), seen)
    (tmp_path / "p.jpg").unlink()
    named = (Row(1, "b", "p.jpg", _file(str(tmp_path / "p.jpg"))), Row(2, "c", "q.jpg", _file(str(tmp_path / "q.jpg"))))
    again, gone = stat_rows(named, seen)
    assert first[0] is not None and first[0].startswith("10:")
    assert again[0] == first[0] and gone == [False, False]
    assert again[1] is not None and again[1].startswith("20:")
    assert stat_rows((Row(3, "d", "p.jpg", _file(str(tmp_path / "p.jpg"))),))[1] == [True]  # a fresh memo sees it gone
