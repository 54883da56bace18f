"""The plan's fast path for a finished, unchanged row (``stages._untouched``) never disagrees with ``decide``:
whatever it leaves alone, ``decide`` leaves alone too (it only saves building a decision)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pipeline.journal import Entry
from pipeline.models import Row, Status
from pipeline.runner.plan import decide, source_of
from pipeline.runner.stages import _untouched

STAMPS = st.sampled_from([None, "1:1", "2:2"])
PATHS = st.sampled_from([None, "/a/p.jpg", "/b/p.jpg"])


@given(status=st.sampled_from(list(Status)), stamp=STAMPS, journaled=STAMPS, was=PATHS,
       source=st.sampled_from(["/a/p.jpg", "/b/p.jpg", None]), key=st.sampled_from([None, "ws/k"]))
def test_the_fast_path_leaves_alone_only_what_decide_leaves_alone(
        status: Status, stamp: str | None, journaled: str | None, was: str | None, source: str | None,
        key: str | None) -> None:
    row = Row(0, "r1", "p.jpg", Path(source) if source else None)
    entry = Entry(status, key, None, "sha", journaled, None, None, was)
    if _untouched(row, entry, stamp):
        assert decide(entry, stamp, retry_failed=True, path=source_of(row)).why is None


def test_the_fast_path_takes_the_common_case() -> None:
    row = Row(0, "r1", "p.jpg", Path("/a/p.jpg"))
    assert _untouched(row, Entry(Status.UPLOADED, "ws/k", None, "sha", "1:1", None, None, "/a/p.jpg"), "1:1")
    assert not _untouched(row, Entry(Status.UPLOADED, "ws/k", None, "sha", "1:1", None, None, "/b/p.jpg"), "1:1")
    assert not _untouched(row, Entry(Status.UPLOADED, "ws/k", None, "sha", "1:2", None, None, "/a/p.jpg"), "1:1")
    assert not _untouched(row, None, "1:1")
