"""Manifest reading (CSV, Parquet, Table, DataFrame) and results writing."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import manifest as manifest_module
from pipeline import sources
from pipeline.config import ColumnMap
from pipeline.errors import ConfigError, ManifestError
from pipeline.manifest import Manifest, results_table, write_results
from pipeline.models import RowResult, Status


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
    assert rows[3].source == tmp_path / "img/3.jpg" and rows[3].problem is None
    assert m.scan().rows == 50
    assert m.schema == pa.schema([("id", pa.string()), ("path", pa.string()), ("note", pa.string())])


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
    assert rows[5].source == Path("/abs/5.png")
    assert m.schema.field("id").type == pa.int64()


def test_table_and_dataframe_inputs_resolve_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    table = pa.table({"path": ["a.jpg", None], "file_name": ["x.jpg", ""]})
    m = Manifest.open(table)
    assert m.name == "<pyarrow.Table>"
    rows = list(m.rows())
    assert rows[0].source == tmp_path / "a.jpg" and rows[0].file_name == "x.jpg" and rows[0].key == "0"
    assert rows[1].problem == ("missing_path", "the path cell is empty") and rows[1].file_name is None
    frame = pd.DataFrame({"path": ["a.jpg", "b.jpg"], "n": [1, 2]}, index=[10, 20])
    m = Manifest.open(frame)
    assert m.name == "<pandas.DataFrame>" and m.schema.names == ["path", "n"]
    assert [r.key for r in m.rows()] == ["0", "1"]


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
    assert [r.key for r in Manifest.open(csv_path).rows()] == ["0"]
    with pytest.raises(ManifestError, match=r"no 'pid' column .*--id-column"):
        Manifest.open(csv_path, ColumnMap(id="pid"))
    with pytest.raises(ManifestError, match=r"no 'fname' column .*--file-name-column"):
        Manifest.open(csv_path, ColumnMap(file_name="fname"))


def test_unsupported_extension_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"must end in \.csv, \.parquet or \.pq; got '\.xlsx'\.$"):
        Manifest.open(write_csv(tmp_path / "m.xlsx", "path\n"))
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
    assert plain == [tmp_path / "manifests" / "sub/a.jpg", absolute]
    rooted = list(Manifest.open(csv_path, root=tmp_path / "photos").rows())
    assert [r.source for r in rooted] == [tmp_path / "photos" / "sub" / "a.jpg", absolute]
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
    assert rows[3].source == root / "inside.jpg" and rows[4].source == root / "inside.jpg"
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


def test_fingerprint_is_stable_across_formats_and_batching(tmp_path: Path) -> None:
    csv_path = sample_csv(tmp_path)
    table = pcsv.read_csv(csv_path)
    pq.write_table(table, tmp_path / "m.parquet")
    prints = {
        Manifest.open(csv_path, batch_size=3, block_size=64).scan().fingerprint,
        Manifest.open(csv_path).scan().fingerprint,
        Manifest.open(tmp_path / "m.parquet", batch_size=11).scan().fingerprint,
        Manifest.open(table.to_pandas()).scan().fingerprint,
    }
    assert len(prints) == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.set_column(1, "path", pa.array(["img/X.jpg", *t["path"].to_pylist()[1:]])),
        lambda t: t.set_column(0, "id", pa.array(["zz", *t["id"].to_pylist()[1:]])),
        lambda t: t.slice(0, t.num_rows - 1),
        lambda t: pa.concat_tables([t.slice(1, 1), t.slice(0, 1), t.slice(2)]),
        lambda t: t.append_column("file_name", pa.array(["n.jpg"] + [None] * (t.num_rows - 1))),
    ],
    ids=["path", "id", "row_removed", "rows_swapped", "file_name"],
)
def test_fingerprint_changes_with_any_row(tmp_path: Path, change: object) -> None:
    table = pcsv.read_csv(sample_csv(tmp_path, n=10))
    changed = change(table)  # type: ignore[operator]
    assert Manifest.open(table).scan().fingerprint != Manifest.open(changed).scan().fingerprint
    noted = table.set_column(2, "note", pa.array(["other"] * 10))
    assert Manifest.open(table).scan().fingerprint == Manifest.open(noted).scan().fingerprint


# -- writing ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_results_keep_input_columns_order_and_types(tmp_path: Path, suffix: str) -> None:
    m = Manifest.open(sample_csv(tmp_path, n=23), batch_size=5)
    results = [
        uploaded(i)
        if i % 2
        else RowResult(i, f"r{i}", Status.REJECTED, reason="not_found", detail="no such file")
        for i in range(23)
    ]
    out = tmp_path / "out" / f"results{suffix}"
    assert write_results(out, m, iter(results)) == 23
    got = pq.read_table(out) if suffix == ".parquet" else pcsv.read_csv(out)
    assert got.column_names[:3] == ["id", "path", "note"]
    assert got.column_names[3:] == [
        "status",
        "thumbnail_key",
        "reason",
        "detail",
        "action",
        "width",
        "height",
        "bytes",
        "source_sha256",
        "attempts",
        "uploaded_at",
        "duplicate_of",
    ]
    assert got["id"].to_pylist() == [f"r{i}" for i in range(23)]
    assert got["status"].to_pylist()[:2] == ["rejected", "uploaded"]
    assert got["thumbnail_key"].to_pylist()[1] == "tk1" and got["reason"].to_pylist()[0] == "not_found"
    assert got["bytes"].to_pylist()[3] == 1003
    if suffix == ".parquet":
        assert got.schema.field("uploaded_at").type == pa.timestamp("us", tz="UTC")
        assert got.schema.field("width").type == pa.int32()
        assert got["uploaded_at"][1].as_py().isoformat() == "2026-01-02T03:04:05.123456+00:00"
    else:
        assert "2026-01-02T03:04:05.123456Z" in out.read_text()
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left behind


def test_clashing_input_columns_are_prefixed(tmp_path: Path) -> None:
    table = pa.table({"path": ["a"], "status": ["vip"], "input_status": ["x"], "width": [7]})
    got = results_table(Manifest.open(table), [uploaded(0)])
    assert got.column_names[:4] == ["path", "input_input_status", "input_status", "input_width"]
    assert got["input_input_status"].to_pylist() == ["vip"] and got["status"].to_pylist() == ["uploaded"]


def test_results_from_a_dataframe_keep_passthrough_types(tmp_path: Path) -> None:
    frame = pd.DataFrame({"path": ["a", "b"], "score": [0.5, 1.5]})
    got = results_table(Manifest.open(frame), [uploaded(0), uploaded(1)])
    assert got["score"].to_pylist() == [0.5, 1.5] and got.schema.metadata is None


@pytest.mark.parametrize(
    "results",
    [
        [uploaded(0), uploaded(2), uploaded(1)],
        [uploaded(0), uploaded(1)],
        [uploaded(0), uploaded(1), uploaded(2), uploaded(3)],
    ],
    ids=["misordered", "too_few", "too_many"],
)
def test_misaligned_results_leave_the_old_file_untouched(tmp_path: Path, results: list[RowResult]) -> None:
    m = Manifest.open(pa.table({"path": ["a", "b", "c"]}), batch_size=2)
    out = tmp_path / "results.parquet"
    out.write_bytes(b"previous")
    with pytest.raises(ValueError, match="row"):
        write_results(out, m, results)
    assert out.read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == ["results.parquet"]


def test_results_format_errors(tmp_path: Path) -> None:
    m = Manifest.open(pa.table({"path": ["a"], "tags": pa.array([["x", "y"]])}))
    with pytest.raises(ConfigError, match=r"\.parquet"):
        write_results(tmp_path / "r.txt", m, [uploaded(0)])
    with pytest.raises(ConfigError, match="cannot be written as csv"):
        write_results(tmp_path / "r.csv", m, [uploaded(0)])
    assert os.listdir(tmp_path) == []
    assert write_results(tmp_path / "r.out", m, [uploaded(0)], fmt="parquet") == 1
    assert pq.read_table(tmp_path / "r.out")["tags"].to_pylist() == [["x", "y"]]


def test_empty_manifest_writes_a_header_only_file(tmp_path: Path) -> None:
    m = Manifest.open(write_csv(tmp_path / "m.csv", "path,id\n"))
    assert m.scan().rows == 0
    assert write_results(tmp_path / "r.csv", m, []) == 0
    assert (tmp_path / "r.csv").read_text().startswith('"path","id","status"')


@settings(max_examples=40, deadline=None)
@given(
    paths=st.lists(st.one_of(st.none(), st.text(min_size=1, max_size=12)), min_size=0, max_size=40),
    batch_size=st.integers(1, 9),
)
def test_rows_and_results_follow_input_order(paths: list[str | None], batch_size: int) -> None:
    table = pa.table({"path": pa.array(paths, pa.string()), "n": pa.array(range(len(paths)), pa.int64())})
    m = Manifest.open(table, batch_size=batch_size)
    rows = list(m.rows())
    assert [r.index for r in rows] == list(range(len(paths)))
    assert [r.path for r in rows] == [p or "" for p in paths]
    got = results_table(m, (uploaded(r.index) for r in rows))
    assert got["n"].to_pylist() == list(range(len(paths)))
    assert got["thumbnail_key"].to_pylist() == [f"tk{i}" for i in range(len(paths))]
    assert m.scan().fingerprint == Manifest.open(table, batch_size=batch_size + 3).scan().fingerprint


def test_an_id_hash_collision_is_not_a_duplicate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest_module, "_hash64", len)  # every id of the same length collides
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
