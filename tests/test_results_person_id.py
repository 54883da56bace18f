"""The results' ``person_id`` and a manifest column of the same name (the person-id column by default): one
column, holding the attached person's id, else the row's own input id; nothing lost, nothing renamed."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.models import RowResult, Status
from pipeline.results import ResultChunk, folded, result_schema, results_table, write_results

INPUT = pa.schema([("path", pa.string()), ("person_id", pa.int64()), ("person", pa.string())])


def _chunk() -> ResultChunk:
    columns = pa.RecordBatch.from_pylist([
        {"path": "a.jpg", "person_id": 1001, "person": None},   # attached to its id
        {"path": "b.jpg", "person_id": 999, "person": None},    # unknown id: failed, not attached
        {"path": "c.jpg", "person_id": None, "person": "Ann"},  # attached by name
        {"path": "d.jpg", "person_id": None, "person": None},   # no person
    ], schema=INPUT)
    return ResultChunk(columns, [
        RowResult(0, "a", Status.ATTACHED, thumbnail_key="k1", person_id="1001", attached_at="2026-01-01T00:00:00Z"),
        RowResult(1, "b", Status.FAILED, reason="person_not_found"),
        RowResult(2, "c", Status.ATTACHED, thumbnail_key="k3", person_id="1002", attached_at="2026-01-01T00:00:00Z"),
        RowResult(3, "d", Status.UPLOADED, thumbnail_key="k4"),
    ])


def test_the_person_id_column_is_folded_into_the_results_person_id(tmp_path: Path) -> None:
    fold = folded(INPUT, "person_id")
    assert fold == "person_id"
    table = results_table(INPUT, [_chunk()], fold=fold)
    assert table.schema.names.count("person_id") == 1 and "input_person_id" not in table.schema.names
    assert table.schema.field("person_id").type == pa.string()
    assert table.column("person_id").to_pylist() == ["1001", "999", "1002", None]
    assert table.column("attached_at").is_valid().to_pylist() == [True, False, True, False]
    for name in ("r.parquet", "r.csv"):
        write_results(tmp_path / name, INPUT, [_chunk()], fold=fold)
    assert pq.read_table(tmp_path / "r.parquet").equals(table)
    header, _, second, *_ = (tmp_path / "r.csv").read_text().splitlines()
    assert second.split(",")[header.split(",").index('"person_id"')] == '"999"'


def test_a_person_id_column_that_is_not_the_person_id_option_is_renamed() -> None:
    assert folded(INPUT, "mi_id") is None and folded(INPUT.remove(1), "person_id") is None
    names = result_schema(INPUT, fold=None).names
    assert "input_person_id" in names and names.count("person_id") == 1
    table = results_table(INPUT, [_chunk()])
    assert table.column("input_person_id").to_pylist() == [1001, 999, None, None]
    assert table.column("person_id").to_pylist() == ["1001", None, "1002", None]
