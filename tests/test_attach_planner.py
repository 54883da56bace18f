"""The pure attach planner: examples of each rule, then properties over random persons, rows and limits."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.attach import AttachRow, PersonInfo, Plan, Target, plan, validate

ADA, BOB, OLD = Target(name="Ada"), Target(name="Bob"), Target(person_id="42")


def rows_for(target: Target, n: int, *, prefix: str = "", primary: int | None = None,
             uploaded: bool = True) -> list[AttachRow]:
    p = prefix or str(target.name or target.person_id)
    return [AttachRow(f"{p}-{i}", target, i == primary, f"key/{p}-{i}" if uploaded else None) for i in range(n)]


def primaries(result: Plan) -> list[str]:
    return [t.row_key for c in result.calls for t in c.thumbnails if t.primary]


def test_a_new_person_of_110_rows_is_created_with_100_and_10_are_full() -> None:
    rows = rows_for(ADA, 110, primary=105)
    result = plan(rows, {}, 100)
    assert [(c.kind, len(c.thumbnails)) for c in result.calls] == [("create", 100)]
    assert primaries(result) == ["Ada-105"]  # the marked row keeps its place past the limit
    assert {r.row_key for r in result.refused} == {f"Ada-{i}" for i in range(99, 110) if i != 105}
    assert {r.reason for r in result.refused} == {"person_full"}


def test_without_a_mark_the_first_row_is_primary_and_adds_follow_in_hundreds() -> None:
    result = plan(rows_for(ADA, 250), {}, 300)
    assert [(c.kind, len(c.thumbnails)) for c in result.calls] == [("create", 100), ("add", 100), ("add", 50)]
    assert primaries(result) == ["Ada-0"] and result.calls[1].person_id is None  # adds go to the new person


def test_an_existing_person_counts_what_it_has_and_keeps_its_primary() -> None:
    rows = rows_for(OLD, 8)
    result = plan(rows, {OLD: PersonInfo("42", count=95, has_primary=True)}, 100)
    assert [(c.kind, c.person_id, len(c.thumbnails)) for c in result.calls] == [("add", "42", 5)]
    assert primaries(result) == [] and len(result.refused) == 3
    marked = plan(rows_for(OLD, 2, primary=1), {OLD: PersonInfo("42", 10, True)}, 100)
    assert primaries(marked) == ["42-1"]


def test_an_existing_name_is_added_to_and_an_unknown_id_is_refused() -> None:
    rows = rows_for(ADA, 2) + rows_for(OLD, 2)
    result = plan(rows, {ADA: PersonInfo("7", 3, True)}, 100)
    assert [(c.kind, c.person_id) for c in result.calls] == [("add", "7")]
    assert [(r.row_key, r.reason) for r in result.refused] == [("42-0", "person_not_found"),
                                                              ("42-1", "person_not_found")]
    assert "42" in result.refused[0].detail


def test_a_late_primary_takes_over_when_it_arrives() -> None:
    waiting = rows_for(ADA, 3, primary=2)
    early = [*waiting[:2], AttachRow("Ada-2", ADA, True, None)]  # the marked row is not uploaded yet
    first = plan(early, {}, 100)
    assert [c.kind for c in first.calls] == ["create"] and primaries(first) == ["Ada-0"]
    later = [AttachRow(r.row_key, ADA, r.primary, r.thumbnail_key, attached=i < 2) for i, r in enumerate(waiting)]
    second = plan(later, {ADA: PersonInfo("7")}, 100)
    assert [(c.kind, c.person_id) for c in second.calls] == [("add", "7")] and primaries(second) == ["Ada-2"]


def test_the_first_row_in_input_order_becomes_primary_even_when_uploaded_last() -> None:
    rows = rows_for(ADA, 3)
    first = plan([AttachRow("Ada-0", ADA), *rows[1:]], {}, 100)
    assert primaries(first) == ["Ada-1"]  # stands in until row 0 is uploaded
    done = [AttachRow(r.row_key, ADA, False, r.thumbnail_key, attached=r.row_key != "Ada-0") for r in rows]
    assert primaries(plan(done, {ADA: PersonInfo("7")}, 100)) == ["Ada-0"]


def test_nothing_to_call_when_nothing_is_uploaded_or_everything_is_attached() -> None:
    assert plan(rows_for(ADA, 3, uploaded=False), {}, 100).calls == ()
    attached = [AttachRow(r.row_key, ADA, False, r.thumbnail_key, attached=True) for r in rows_for(ADA, 3)]
    assert plan(attached, {ADA: PersonInfo("7")}, 100).calls == ()


def test_validate_names_both_rows_marked_primary() -> None:
    rows = [*rows_for(ADA, 3, primary=0), AttachRow("late", ADA, True), *rows_for(BOB, 2, primary=1)]
    conflicts = validate(rows)
    assert [(c.target, c.first_row, c.second_row) for c in conflicts] == [(ADA, "Ada-0", "late")]
    assert "'Ada-0'" in str(conflicts[0]) and "'late'" in str(conflicts[0])
    with pytest.raises(ValueError, match="two rows marked primary"):
        plan(rows, {}, 100)


def test_a_target_is_a_name_or_an_id() -> None:
    with pytest.raises(ValueError):
        Target()
    with pytest.raises(ValueError):
        Target(name="a", person_id="1")


TARGETS = [Target(name=n) for n in ("A", "B", "C")] + [Target(person_id=i) for i in ("1", "2")]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[AttachRow], dict[Target, PersonInfo], int]:
    person_max = draw(st.sampled_from([1, 2, 99, 100, 101, 150, 260]) | st.integers(1, 260))
    # Few persons and many rows often enough to cross 100 rows for one person (a create plus adds).
    used = TARGETS[: draw(st.integers(1, len(TARGETS)))]
    n = draw(st.sampled_from([0, 1, 101, 230, 400]) | st.integers(0, 400))
    picks = draw(st.lists(st.sampled_from(used), min_size=n, max_size=n))
    states = draw(st.lists(st.sampled_from(["uploaded", "uploaded", "waiting", "attached"]), min_size=n, max_size=n))
    marked: dict[Target, int] = {}
    for target in set(picks):
        if draw(st.booleans()):
            marked[target] = draw(st.sampled_from([i for i, t in enumerate(picks) if t == target]))
    rows = [AttachRow(f"r{i}", t, marked.get(t) == i, None if s == "waiting" else f"k{i}", s == "attached")
            for i, (t, s) in enumerate(zip(picks, states, strict=True))]
    known: dict[Target, PersonInfo] = {}
    for target in TARGETS:
        if draw(st.booleans()) or (target.name is not None and any(r.attached for r in rows if r.target == target)):
            known[target] = PersonInfo(f"id-{target}", draw(st.integers(0, 120)), draw(st.booleans()))
    return rows, known, person_max


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_plan_properties(scenario: tuple[list[AttachRow], dict[Target, PersonInfo], int]) -> None:
    rows, known, person_max = scenario
    result = plan(rows, known, person_max)
    refused = {r.row_key for r in result.refused}
    planned = Counter(t.thumbnail_key for c in result.calls for t in c.thumbnails)
    # Every uploaded, unattached, accepted key is planned exactly once; nothing else is.
    expected = {r.thumbnail_key for r in rows if r.thumbnail_key and not r.attached and r.row_key not in refused}
    assert set(planned) == expected and set(planned.values()) <= {1}
    for call in result.calls:
        assert 1 <= len(call.thumbnails) <= 100
        ones = sum(t.primary for t in call.thumbnails)
        assert ones == 1 if call.kind == "create" else ones <= 1
        assert call.kind == "add" or (call.target.name is not None and call.target not in known)
    for target in {r.target for r in rows}:
        group = [r for r in rows if r.target == target]
        kinds = [c.kind for c in result.calls if c.target == target]
        assert kinds.count("create") <= 1 and (not kinds or kinds[0] == "create" or "create" not in kinds)
        info = known.get(target)
        if info is None and target.person_id is not None:
            assert all(r.row_key in refused for r in group)
            continue
        kept = [r for r in group if r.row_key not in refused]
        assert len(kept) == min(len(group), max(0, person_max - (info.count if info else 0)))
        marked = next((r for r in group if r.primary), None)
        if marked is not None and marked.row_key not in refused and marked.thumbnail_key and not marked.attached:
            assert any(t.row_key == marked.row_key and t.primary for c in result.calls for t in c.thumbnails)
