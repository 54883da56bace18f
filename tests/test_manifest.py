"""Manifest reading (CSV, Parquet, Table, DataFrame): streaming, row identity, path resolution, ``row_batches``.

The CSV rules and the manifest help (issues 11 and 12) are in ``test_manifest_csv.py``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import ColumnMap
from pipeline.errors import ManifestError
from pipeline.manifest import Manifest, RowBatch, sources
from pipeline.manifest import reader as manifest_module
from pipeline.models import RowResult, Status
from pipeline.results import ResultChunk, results_table


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def sample_csv(tmp_path: Path, n: int = 50) -> Path:
    lines = ["id,path,note"] + [f"r{i},img/{i}.jpg,note {i}" for i in range(n)]
    return write_csv(tmp_path / "m.csv", "\n".join(lines) + "\n")


def uploaded(i: int, key: str = "") -> RowResult:
    return RowResult(
        i,
        key or str(i),
        Status.UPLOADED,
        f"tk{i}",
        action="passthrough",
        width=300,
        height=400,
        bytes=1000 + i,
        source_sha256="ab" * 32,
        attempts=1,
        uploaded_at="2026-01-02T03:04:05.123456Z",
    )


# -- reading ---------------------------------------------------------------------------------------
def test_csv_streams_in_several_batches_and_keeps_order(tmp_path: Path) -> None:
    m = Manifest.open(sample_csv(tmp_path), batch_size=7, block_size=128)
    batches = list(m.batches())
    assert len(batches) > 7 and all(b.num_rows <= 7 for b in batches)
    rows = list(m.rows())
    assert [r.index for r in rows] == list(range(50))
    assert [r.key for r in rows] == [f"r{i}" for i in range(50)]
    assert rows[3].source == str(tmp_path / "img/3.jpg") and rows[3].problem is None
    assert m.scan().rows == 50
    assert m.schema == pa.schema([("id", pa.string()), ("path", pa.string()), ("note", pa.string())])
    assert pa.Table.from_batches(list(m.batches())).schema == m.schema


def test_csv_cells_are_text_even_when_they_look_like_numbers(tmp_path: Path) -> None:
    m = Manifest.open(
        write_csv(tmp_path / "m.csv", "id,path,zip\n007,a.jpg,01234\n8,b.jpg,x\n"), block_size=16
    )
    assert [r.key for r in m.rows()] == ["007", "8"]
    assert pa.Table.from_batches(list(m.batches()))["zip"].to_pylist() == ["01234", "x"]


def test_rows_from_a_start_index(tmp_path: Path) -> None:
    m = Manifest.open(sample_csv(tmp_path), batch_size=8)
    assert [r.index for r in m.rows(start=13)] == list(range(13, 50))
    assert list(m.rows(start=50)) == []


def test_parquet_streams_and_stringifies_int_ids(tmp_path: Path) -> None:
    table = pa.table(
        {"id": pa.array(range(100, 130), pa.int64()), "path": [f"/abs/{i}.png" for i in range(30)]}
    )
    pq.write_table(table, tmp_path / "m.parquet", row_group_size=10)
    m = Manifest.open(tmp_path / "m.parquet", batch_size=4)
    assert all(b.num_rows <= 4 for b in m.batches())
    rows = list(m.rows())
    assert rows[0].key == "100" and rows[-1].key == "129"
    assert rows[5].source == "/abs/5.png"
    assert m.schema.field("id").type == pa.int64()


def test_table_and_dataframe_inputs_resolve_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    table = pa.table({"path": ["a.jpg", None], "file_name": ["x.jpg", ""]})
    m = Manifest.open(table)
    assert m.name == "<pyarrow.Table>"
    rows = list(m.rows())
    assert rows[0].source == str(tmp_path / "a.jpg") and rows[0].file_name == "x.jpg" and rows[0].key == "a.jpg"
    assert rows[1].problem == ("missing_path", "the path cell is empty") and rows[1].file_name is None
    assert rows[1].key == "#row-1"
    frame = pd.DataFrame({"path": ["a.jpg", "b.jpg"], "n": [1, 2]}, index=[10, 20])
    m = Manifest.open(frame)
    assert m.name == "<pandas.DataFrame>" and m.schema.names == ["path", "n"]
    assert [r.key for r in m.rows()] == ["a.jpg", "b.jpg"]


def test_custom_column_names(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "m.csv", "file,pid,name\na.jpg,p1,A.jpg\n")
    m = Manifest.open(csv_path, ColumnMap(path="file", id="pid", file_name="name"))
    (row,) = m.rows()
    assert (row.key, row.path, row.file_name) == ("p1", "a.jpg", "A.jpg")


def test_missing_path_column_names_the_columns_and_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as err:
        Manifest.open(write_csv(tmp_path / "m.csv", "a,b,c\n1,2,3\n"))
    assert str(err.value) == (
        "The manifest has no 'path' column (columns: a, b, c); name the column with --path-column."
    )


def test_default_optional_columns_may_be_absent_but_named_ones_may_not(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "m.csv", "path\na.jpg\n")
    assert [r.key for r in Manifest.open(csv_path).rows()] == ["a.jpg"]
    with pytest.raises(ManifestError, match=r"no 'pid' column .*--id-column"):
        Manifest.open(csv_path, ColumnMap(id="pid"))
    with pytest.raises(ManifestError, match=r"no 'fname' column .*--file-name-column"):
        Manifest.open(csv_path, ColumnMap(file_name="fname"))


def test_unsupported_extension_and_unreadable_files(tmp_path: Path) -> None:
    expected = r"must end in \.csv, \.tsv, \.csv\.gz, \.tsv\.gz, \.parquet or \.pq; got '\.txt'\.$"
    with pytest.raises(ManifestError, match=expected):
        Manifest.open(write_csv(tmp_path / "m.txt", "path\n"))
    with pytest.raises(ManifestError, match=r"cannot be opened: No such file or directory\.$"):
        Manifest.open(tmp_path / "absent.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ManifestError, match="is not a readable Parquet file"):
        Manifest.open(tmp_path / "bad.parquet")
    with pytest.raises(ManifestError, match="is empty"):
        Manifest.open(write_csv(tmp_path / "empty.csv", ""))
    with pytest.raises(ManifestError, match="A manifest must be"):
        Manifest.open(42)


def test_malformed_csv_fails_with_one_sentence_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"path,id\na.jpg,1\n\xff\xfe.jpg,2\n")
    expected = r"^The manifest .*bad\.csv cannot be read beyond its first 0 rows: .*\.$"
    with pytest.raises(ManifestError, match=expected):
        Manifest.open(bad).scan()
    ragged = write_csv(tmp_path / "ragged.csv", "path,id\na.jpg,1,extra\n")
    with pytest.raises(ManifestError, match="cannot be read"):
        list(Manifest.open(ragged).rows())


def test_a_cell_bigger_than_the_block_is_read_by_growing_the_block(tmp_path: Path) -> None:
    big = "x" * 5000
    csv_path = write_csv(tmp_path / "m.csv", f"path,note\na.jpg,small\nb.jpg,{big}\nc.jpg,end\n")
    m = Manifest.open(csv_path, block_size=512)
    assert [r.path for r in m.rows()] == ["a.jpg", "b.jpg", "c.jpg"]  # no row lost or repeated on restart
    assert pa.Table.from_batches(list(m.batches()))["note"].to_pylist()[1] == big


def test_a_cell_beyond_the_largest_block_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "MAX_BLOCK_SIZE", 4096)
    csv_path = write_csv(tmp_path / "m.csv", 'path,note\na.jpg,"' + "y" * 50_000 + "\n")  # an unclosed quote
    with pytest.raises(
        ManifestError, match=r"has a row over 0 MiB after its first 0 rows \(an unclosed quote\?\)"
    ):
        Manifest.open(csv_path, block_size=512).scan()


def test_relative_absolute_and_root_resolution(tmp_path: Path) -> None:
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    (tmp_path / "manifests").mkdir()
    absolute = tmp_path / "photos" / "abs.jpg"
    csv_path = write_csv(tmp_path / "manifests" / "m.csv", f"path\nsub/a.jpg\n{absolute}\n")
    plain = [r.source for r in Manifest.open(csv_path).rows()]
    assert plain == [str(tmp_path / "manifests" / "sub/a.jpg"), str(absolute)]
    rooted = list(Manifest.open(csv_path, root=tmp_path / "photos").rows())
    assert [r.source for r in rooted] == [str(tmp_path / "photos" / "sub" / "a.jpg"), str(absolute)]
    assert all(r.problem is None for r in rooted)


def test_escapes_from_root_are_refused_with_reasons(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret.jpg").write_bytes(b"x")
    (root / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (root / "inside.jpg").write_bytes(b"y")
    (root / "ok_link.jpg").symlink_to(root / "inside.jpg")
    (root / "dirlink").symlink_to(tmp_path)
    table = pa.table(
        {
            "path": [
                "../secret.jpg",
                "link.jpg",
                "/etc/passwd",
                "sub/../inside.jpg",
                "ok_link.jpg",
                "dirlink/secret.jpg",
                "sub/..",
            ]
        }
    )
    rows = list(Manifest.open(table, root=root).rows())
    reasons = [r.problem[0] if r.problem else None for r in rows]
    assert reasons == ["outside_root", "outside_root", "outside_root", None, None, "outside_root", None]
    assert rows[1].problem is not None and f"outside --root {root}" in rows[1].problem[1]
    assert str(tmp_path / "secret.jpg") in rows[1].problem[1]
    assert rows[3].source == str(root / "inside.jpg") and rows[4].source == str(root / "inside.jpg")
    assert all(r.source is None for r in rows if r.problem)


def test_empty_and_invalid_paths(tmp_path: Path) -> None:
    table = pa.table({"path": [None, "", "   ", "a\x00b.jpg", "ok.jpg"]})
    rows = list(Manifest.open(table, root=tmp_path).rows())
    assert [r.problem[0] if r.problem else None for r in rows] == [
        "missing_path",
        "missing_path",
        "missing_path",
        "invalid_path",
        None,
    ]
    assert rows[0].path == "" and rows[3].path == "a\x00b.jpg"


def test_duplicate_ids_are_refused_naming_id_and_rows(tmp_path: Path) -> None:
    table = pa.table({"id": ["a", "b", "c", "b", "a"], "path": ["p"] * 5})
    with pytest.raises(ManifestError) as err:
        Manifest.open(table, batch_size=2).scan()
    assert str(err.value) == (
        "The id 'b' appears more than once in <pyarrow.Table> (rows 1 and 3, counted from 0); "
        "ids must be unique."
    )


def test_empty_id_is_refused(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "m.csv", "id,path\nx,a.jpg\n,b.jpg\n")
    with pytest.raises(ManifestError, match=r"Row 1 of .*m\.csv has an empty 'id'"):
        Manifest.open(csv_path).scan()


def test_an_id_hash_collision_is_not_a_duplicate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest_module, "hash64", len)  # every id of the same length collides
    table = pa.table({"id": ["a", "b", "cc", "dd", "b"], "path": ["p"] * 5})
    with pytest.raises(ManifestError, match=r"The id 'b' .*rows 1 and 4"):
        Manifest.open(table).scan()
    assert Manifest.open(table.slice(0, 4)).scan().rows == 4


def test_bom_crlf_and_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b'\xef\xbb\xbfpath,id\r\na.jpg,1\r\n"b\r\nc.jpg",2\r\n')
    m = Manifest.open(path)
    assert m.schema.names == ["path", "id"]
    assert [(r.key, r.path) for r in m.rows()] == [("1", "a.jpg"), ("2", "b\r\nc.jpg")]


@pytest.mark.slow
def test_a_200_mb_cell_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w") as fh:
        fh.write("path,note\na.jpg,ok\nb.jpg,")
        for _ in range(200):
            fh.write("z" * (1 << 20))
        fh.write("\nc.jpg,end\n")
    with pytest.raises(ManifestError, match=r"has a row over 16 MiB after its first row"):
        Manifest.open(path).scan()


# -- row identity (issue 10, item 1) ---------------------------------------------------------------
def test_without_an_id_column_the_key_is_the_path_cell_as_written(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    csv_path = write_csv(tmp_path / "m.csv", "path,note\n./a.jpg,x\nsub/../b.jpg,y\n  c.jpg,z\n")
    rows = list(Manifest.open(csv_path, root=tmp_path).rows())
    # Not the row number, not the resolved path: the cell, spaces and all.
    assert [r.key for r in rows] == ["./a.jpg", "sub/../b.jpg", "  c.jpg"]
    assert rows[1].source == str(tmp_path / "b.jpg")


def test_with_an_id_column_the_key_is_the_id_as_text(tmp_path: Path) -> None:
    table = pa.table({"id": pa.array([10, 2], pa.int64()), "path": ["a.jpg", "a.jpg"]})
    assert [r.key for r in Manifest.open(table).rows()] == ["10", "2"]
    assert Manifest.open(table).scan().rows == 2  # the same file twice is fine under two ids


def test_a_repeated_path_without_an_id_column_is_refused_suggesting_one(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "m.csv", "path\na.jpg\nb.jpg\nc.jpg\nb.jpg\n")
    with pytest.raises(ManifestError) as err:
        Manifest.open(csv_path, batch_size=2).scan()
    assert str(err.value) == (
        f"The path 'b.jpg' appears more than once in {csv_path} (rows 1 and 3, counted from 0); without an id "
        "column a row's key is its path: remove the repeated row, or add an id column (--id-column) to list "
        "one file twice."
    )


def test_rows_without_a_path_or_an_id_are_missing_path_and_never_collide() -> None:
    table = pa.table({"path": ["a.jpg", None, "", " ", "b.jpg"], "note": ["1", "2", "3", "4", "5"]})
    m = Manifest.open(table, batch_size=2)
    assert m.scan().rows == 5  # three rows without a path are not duplicates of each other
    rows = list(m.rows())
    assert [r.key for r in rows] == ["a.jpg", "#row-1", "#row-2", "#row-3", "b.jpg"]
    assert [r.problem[0] if r.problem else None for r in rows] == [
        None, "missing_path", "missing_path", "missing_path", None
    ]


def test_a_path_that_reads_like_a_pathless_key_is_refused_not_merged() -> None:
    table = pa.table({"path": ["a.jpg", None, "#row-1"]})
    with pytest.raises(ManifestError) as err:
        Manifest.open(table).scan()
    assert str(err.value) == (
        "Row 2 of <pyarrow.Table> has the path '#row-1', which is the key of row 1 (a row without a path); "
        "add an id column (--id-column) to key the rows."
    )


def test_an_empty_id_names_the_way_to_key_by_path(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"pass --id-column '' to key the rows by their path\.$"):
        Manifest.open(pa.table({"id": ["x", None], "path": ["a", "b"]})).scan()


# -- row_batches: the one read of a run ------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    cells=st.lists(st.tuples(st.text(min_size=0, max_size=6), st.integers(-5, 5)), min_size=0, max_size=40),
    batch_size=st.integers(1, 9),
)
def test_row_batches_pair_each_row_with_its_own_columns(cells: list[tuple[str, int]], batch_size: int) -> None:
    table = pa.table(
        {
            "id": [f"k{i}" for i in range(len(cells))],
            "path": [path for path, _ in cells],
            "n": pa.array([n for _, n in cells], pa.int64()),
        }
    )
    m = Manifest.open(table, batch_size=batch_size)
    batches = list(m.row_batches())
    assert all(isinstance(b, RowBatch) and 0 < b.columns.num_rows <= batch_size for b in batches)
    assert all(b.columns.num_rows == len(b.rows) and b.columns.schema == m.schema for b in batches)
    rows = [r for b in batches for r in b.rows]
    assert [r.index for r in rows] == list(range(len(cells)))
    for b in batches:
        assert [r.key for r in b.rows] == b.columns.column(0).to_pylist()
        assert [r.path for r in b.rows] == b.columns.column(1).to_pylist()
    got = results_table(
        m.schema, (ResultChunk(b.columns, [uploaded(r.index, r.key) for r in b.rows]) for b in batches)
    )
    assert got["n"].to_pylist() == [n for _, n in cells]
    assert got["thumbnail_key"].to_pylist() == [f"tk{i}" for i in range(len(cells))]


def test_row_batches_of_a_csv_carry_the_typed_columns_and_text_keys(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "m.csv", "id,path,n\n" + "".join(f"{i},{i}.jpg,0{i}\n" for i in range(9)))
    m = Manifest.open(csv_path, batch_size=4, block_size=32)
    batches = list(m.row_batches())  # no scan first: the types are still decided before the first batch
    assert m.schema == pa.schema([("id", pa.int64()), ("path", pa.string()), ("n", pa.string())])
    assert len(batches) > 1 and all(0 < b.columns.num_rows <= 4 for b in batches)
    assert all(b.columns.schema == m.schema for b in batches)
    assert [r.key for b in batches for r in b.rows] == [str(i) for i in range(9)]
    assert pa.Table.from_batches([b.columns for b in batches])["id"].to_pylist() == list(range(9))


def test_a_csv_rewritten_after_the_scan_with_text_in_an_int_column_is_refused(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "m.csv", "id,path\n1,a.jpg\n2,b.jpg\n")
    m = Manifest.open(csv_path)
    assert m.scan().rows == 2 and m.schema.field("id").type == pa.int64()
    write_csv(csv_path, "id,path\n1,a.jpg\nB,b.jpg\n")
    with pytest.raises(ManifestError, match=r"column 'id' of .* now holds text .*changed during the run"):
        list(m.row_batches())


def test_clashing_input_columns_still_pass_through_renamed() -> None:
    table = pa.table({"path": ["a"], "status": ["vip"], "input_status": ["x"], "width": [7]})
    m = Manifest.open(table)
    (batch,) = m.row_batches()
    got = results_table(m.schema, [ResultChunk(batch.columns, [uploaded(0, "a")])])
    assert got.column_names[:4] == ["path", "input_input_status", "input_status", "input_width"]
    assert got["input_input_status"].to_pylist() == ["vip"] and got["status"].to_pylist() == ["uploaded"]
