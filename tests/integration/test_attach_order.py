"""``--attach`` uploads a person's rows close together within each read batch (issue 13: "when that is cheap,
no global sort"), while the results keep the input order and the same rows are uploaded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from helpers import write_manifest

from pipeline import runner
from pipeline.config import Settings
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.runner import session as session_module
from pipeline.runner.stages import by_person
from pipeline.samples import make_jpeg

UNCAPPED = pytest.mark.parametrize(
    "emulator", [EmulatorConfig(rate=0, confirm_rate=0, persons_rate=0)], indirect=True)

BATCH = 8
OWNERS = ["A", "B", "", "C", "A", "B", "", "A",   # batch 1: A x3, B x2, C, two rows without a person
          "C", "", "B", "C", "A", "", "B", "id",  # batch 2: the id row is an existing person by id
          "A", "B", "C", "", "A", "B", "C", ""]   # batch 3


def test_by_person_is_stable_and_keeps_rows_without_a_person_in_order() -> None:
    items = ["a1", "b1", "-1", "a2", "c1", "-2", "b2", "a3"]
    got = by_person(items, lambda s: None if s[0] == "-" else s[0])
    assert got == ["a1", "a2", "a3", "b1", "b2", "-1", "c1", "-2"]
    assert by_person([], lambda s: s) == []


class _Tap:
    """Stands in for the plan stage's outbox: records each job's path, then hands it on unchanged."""

    def __init__(self, pipe: Any, seen: list[str]) -> None:
        self._pipe, self._seen = pipe, seen

    async def put(self, item: Any) -> bool:
        if item is not None:
            self._seen.append(item.row.path.removesuffix(".jpg"))
        return bool(await self._pipe.put(item))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)


@UNCAPPED
async def test_a_persons_rows_are_uploaded_together_within_each_batch(
        emulator: Emulator, settings_for: Callable[..., Settings], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    rows = []
    for i, who in enumerate(OWNERS):
        make_jpeg(folder / f"p{i:03d}.jpg", 300, 300, seed=2000 + i, quality=70)
        rows.append({"id": f"r{i:03d}", "path": f"p{i:03d}.jpg", "person": "" if who == "id" else who,
                     "person_id": "1001" if who == "id" else ""})
    manifest = write_manifest(folder / "manifest.csv", rows)
    # The order the plan hands the rows on is what the run controls; the uploads follow it but several rows
    # are prepared at once, so neighbours may finish in either order: the handed-on order is what is checked.
    handed: list[str] = []

    class TappedPlan(session_module.PlanStage):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.out = _Tap(self.out, handed)  # type: ignore[assignment]

    monkeypatch.setattr(session_module, "PlanStage", TappedPlan)
    settings = settings_for(emulator, attach=True, attach_rate=0.0, batch_size=BATCH)
    summary = await runner.run_async(settings, manifest)

    owner = {f"p{i:03d}": who for i, who in enumerate(OWNERS)}
    expected: list[str] = []
    for start in range(0, len(OWNERS), BATCH):
        names = [f"p{i:03d}" for i in range(start, start + BATCH)]
        expected += by_person(names, lambda n: owner[n] or None)
    # The id row is handed on too: its person is looked up beside the uploads, and it is refused
    # (person_not_found) just before its presign.
    assert handed == expected
    whose = [owner[n] for n in handed]
    runs = [who for i, who in enumerate(whose) if who and (i == 0 or whose[i - 1] != who)]
    assert sorted(runs) == ["A", "A", "A", "B", "B", "B", "C", "C", "C", "id"]  # one run per person and batch
    assert handed != list(owner)  # the input order interleaves them
    uploaded = [u.file_name.split("-")[0] for u in emulator.issued_by_key.values()]
    assert sorted(uploaded) == sorted(n for n in expected if owner[n] != "id")  # the same rows, each once

    results = pq.read_table(summary.results_path).to_pylist()
    assert [r["id"] for r in results] == [r["id"] for r in rows]  # results stay in input order
    assert {r["status"] for r in results if r["person"]} == {"attached"}
    assert {r["status"] for r, who in zip(results, OWNERS, strict=True) if not who} == {"uploaded"}
    assert {r["reason"] for r, who in zip(results, OWNERS, strict=True) if who == "id"} == {"person_not_found"}
