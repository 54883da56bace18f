"""CSV reading rules (issue 11) and manifest help (issue 12): NA-like text, column types, repeated column names,
blank lines, header-only files, sniffed delimiters, .tsv and gzip, conversion hints, "did you mean"."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import ColumnMap
from pipeline.errors import ConfigError, ManifestError
from pipeline.manifest import Manifest
from pipeline.models import RowResult, Status
from pipeline.options import python_message
from pipeline.results import ResultChunk, check_results_target, results_table

NA_LIKE = ["NA", "N/A", "null", "NaN", "nan", "#N/A"]


def write(path: Path, text: str) -> Path:
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.name.lower().endswith(".gz") else data)
    return path


def table_of(m: Manifest) -> pa.Table:
    return pa.Table.from_batches(list(m.batches()), schema=m.schema)


# -- issue 11: only an empty cell is missing -------------------------------------------------------
def test_na_like_cells_stay_text_in_paths_ids_and_passthrough(tmp_path: Path) -> None:
    lines = ["id,path,note"] + [f"{na},{na}.jpg,{na}" for na in NA_LIKE] + ['x,x.jpg,""', "y,y.jpg,"]
    m = Manifest.open(write(tmp_path / "m.csv", "\n".join(lines) + "\n"))
    assert m.scan().rows == 8  # an id "NA" is an id like any other, not a missing one
    rows = list(m.rows())
    assert [r.key for r in rows] == [*NA_LIKE, "x", "y"]
    assert [r.path for r in rows[:6]] == [f"{na}.jpg" for na in NA_LIKE]
    assert all(r.problem is None for r in rows)
    assert table_of(m)["note"].to_pylist() == [*NA_LIKE, None, None]


def test_a_file_named_like_a_missing_value_is_not_missing_path(tmp_path: Path) -> None:
    m = Manifest.open(write(tmp_path / "m.csv", "path\nNA\nnull\n"))
    rows = list(m.rows())
    assert [(r.key, r.problem) for r in rows] == [("NA", None), ("null", None)]
    assert rows[0].source == str(tmp_path / "NA")


# -- issue 11: the manifest's types where they are unambiguous -------------------------------------
def test_integer_columns_are_int64_and_everything_else_stays_text(tmp_path: Path) -> None:
    text = (
        "num,path,zip,plus,neg0,float,space,big,huge,blank,mixed\n"
        "1,a.jpg,007,+5,-0,1.0, 5,9223372036854775807,9223372036854775808,,1\n"
        "-22,b.jpg,12,6,3,2,6,-9223372036854775808,1,,x\n"
        ",c.jpg,1,7,4,3,7,0,2,,2\n"
    )
    m = Manifest.open(write(tmp_path / "m.csv", text))
    types = {f.name: f.type for f in m.schema}
    assert types == {
        "num": pa.int64(),
        "path": pa.string(),
        "zip": pa.string(),  # a leading zero is part of the text
        "plus": pa.string(),
        "neg0": pa.string(),
        "float": pa.string(),
        "space": pa.string(),
        "big": pa.int64(),
        "huge": pa.string(),  # past int64
        "blank": pa.string(),  # no cell at all: nothing says integer
        "mixed": pa.string(),
    }
    got = table_of(m)
    assert got["num"].to_pylist() == [1, -22, None]
    assert got["big"].to_pylist() == [2**63 - 1, -(2**63), 0]
    assert got["zip"].to_pylist() == ["007", "12", "1"] and got["huge"].to_pylist()[0] == "9223372036854775808"


def test_the_type_rule_sees_the_whole_file_not_the_first_block(tmp_path: Path) -> None:
    rows = [f"{i},{i}.jpg" for i in range(500)] + ["007,late.jpg"]
    m = Manifest.open(write(tmp_path / "m.csv", "id,path\n" + "\n".join(rows) + "\n"), block_size=256)
    assert m.schema.field("id").type == pa.string()
    assert [r.key for r in m.rows()][-2:] == ["499", "007"]


def test_integer_ids_join_back_to_the_source_in_pandas(tmp_path: Path) -> None:
    source = write(tmp_path / "m.csv", "id,path,name\n" + "".join(f"{i},{i}.jpg,n{i}\n" for i in range(1, 6)))
    m = Manifest.open(source, batch_size=2)
    assert m.scan().rows == 5
    chunks = [
        ResultChunk(b.columns, [RowResult(r.index, r.key, Status.UPLOADED, f"tk-{r.key}") for r in b.rows])
        for b in m.row_batches()
    ]
    results = results_table(m.schema, chunks).to_pandas()
    joined = pd.read_csv(source).merge(results[["id", "thumbnail_key"]], on="id", how="inner")
    assert joined["thumbnail_key"].tolist() == [f"tk-{i}" for i in range(1, 6)]


def test_parquet_types_pass_through_untouched(tmp_path: Path) -> None:
    table = pa.table(
        {
            "path": ["a.jpg"],
            "zip": ["007"],
            "n": pa.array([3], pa.int32()),
            "tags": pa.array([["x", "y"]]),
            "pos": pa.array([{"x": 1, "y": 2}]),
            "attrs": pa.array([[("k", "v")]], pa.map_(pa.string(), pa.string())),
            "blob": pa.array([b"\x00\x01"], pa.binary()),
        }
    )
    pq.write_table(table, tmp_path / "m.parquet")
    m = Manifest.open(tmp_path / "m.parquet")
    assert m.schema == table.schema
    assert table_of(m).equals(table)
    # The schema is accurate, so the results check can refuse a CSV results file before any upload.
    with pytest.raises(ConfigError, match=r"cannot hold the column\(s\) tags .*use a \.parquet --out"):
        check_results_target(tmp_path / "r.csv", m.schema)


# -- issue 11: repeated column names ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "sentence"),
    [
        ("path,note,note", "has 2 columns named 'note' (columns 2 and 3, counted from 1)"),
        ("path,,", "has 2 columns with an empty name (columns 2 and 3, counted from 1)"),
        ("path,path", "has 2 columns named 'path' (columns 1 and 2, counted from 1)"),
    ],
    ids=["note_twice", "two_empty", "path_twice"],
)
def test_repeated_csv_column_names_are_refused_when_opened(tmp_path: Path, header: str, sentence: str) -> None:
    path = write(tmp_path / "m.csv", f"{header}\n")
    with pytest.raises(ManifestError) as err:
        Manifest.open(path)
    assert str(err.value) == f"The manifest {path} {sentence}; give every column its own name."


def test_repeated_column_names_in_parquet_tables_and_frames_are_refused(tmp_path: Path) -> None:
    table = pa.table([pa.array(["a.jpg"]), pa.array([1]), pa.array([2])], names=["path", "n", "n"])
    pq.write_table(table, tmp_path / "m.parquet")
    for source in (tmp_path / "m.parquet", table, pd.DataFrame([["a.jpg", 1, 2]], columns=["path", "n", "n"])):
        with pytest.raises(ManifestError, match=r"has 2 columns named 'n' \(columns 2 and 3, counted from 1\)"):
            Manifest.open(source)


# -- issue 11: blank lines and the final newline ---------------------------------------------------
@pytest.mark.parametrize(
    "text",
    ["\npath,id\na.jpg,1\n", "\r\n\r\n\npath,id\r\na.jpg,1\r\n", "\ufeff\n\npath,id\na.jpg,1"],
    ids=["lf", "crlf", "bom_no_final_newline"],
)
def test_leading_blank_lines_are_skipped(tmp_path: Path, text: str) -> None:
    m = Manifest.open(write(tmp_path / "m.csv", text))
    assert m.schema.names == ["path", "id"]
    assert [(r.key, r.path) for r in m.rows()] == [("1", "a.jpg")]


@pytest.mark.parametrize(
    "text",
    ["path,id", "path,id\n", "path,id\r\n", "\npath,id", "path,id\n\n\n"],
    ids=["no_newline", "lf", "crlf", "blank_first_no_newline", "blank_lines_after"],
)
def test_a_header_only_file_is_an_empty_manifest_with_or_without_final_newline(tmp_path: Path, text: str) -> None:
    m = Manifest.open(write(tmp_path / "m.csv", text))
    assert m.scan().rows == 0
    assert list(m.row_batches()) == []
    assert m.schema == pa.schema([("path", pa.string()), ("id", pa.string())])


def test_a_file_of_blank_lines_is_empty(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"is empty: a CSV manifest needs a header line\.$"):
        Manifest.open(write(tmp_path / "m.csv", "\n\r\n\n"))


# -- issue 12: delimiters, .tsv, gzip, other formats -----------------------------------------------
@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("m.csv", "id\tpath\tnote\n1\ta.jpg\tx;y\n2\tb.jpg\tz\n"),
        ("m.csv", "id;path;note\n1;a.jpg;x\ty\n2;b.jpg;z\n"),
        ("m.tsv", "id\tpath\tnote\n1\ta.jpg\tx,y\n2\tb.jpg\tz\n"),
        ("m.csv.gz", "id,path,note\n1,a.jpg,x\n2,b.jpg,z\n"),
        ("m.TSV.GZ", "id\tpath\tnote\n1\ta.jpg\tx\n2\tb.jpg\tz\n"),
    ],
    ids=["csv_tabs", "csv_semicolons", "tsv", "csv_gz", "tsv_gz_upper"],
)
def test_separators_and_compression_are_recognised(tmp_path: Path, name: str, text: str) -> None:
    m = Manifest.open(write(tmp_path / name, text), block_size=64)
    assert m.schema.names == ["id", "path", "note"] and m.schema.field("id").type == pa.int64()
    assert [(r.key, r.path) for r in m.rows()] == [("1", "a.jpg"), ("2", "b.jpg")]
    assert table_of(m)["note"].to_pylist()[1] == "z"


def test_a_broken_gzip_manifest_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "m.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ManifestError, match=r"m\.csv\.gz has no readable CSV header line"):
        Manifest.open(tmp_path / "m.csv.gz")


@pytest.mark.parametrize(
    ("suffix", "how"),
    [
        (".xlsx", "pandas.read_excel("),
        (".xls", "pandas.read_excel("),
        (".jsonl", "pandas.read_json("),
        (".json", "pandas.read_json("),
    ],
)
def test_spreadsheets_and_json_get_a_sentence_saying_how_to_convert(tmp_path: Path, suffix: str, how: str) -> None:
    path = write(tmp_path / f"m{suffix}", "{}")
    with pytest.raises(ManifestError) as err:
        Manifest.open(path)
    message = str(err.value)
    assert message.startswith(f"The manifest {path} is ") and message.endswith("pass the .parquet file.")
    assert f"{how}'{path}'" in message and ".to_parquet('manifest.parquet')" in message
    assert ("lines=True" in message) == (suffix == ".jsonl")


# -- issue 12: "did you mean", flags in --kebab-case -----------------------------------------------
@pytest.mark.parametrize(
    ("columns", "header", "expected"),
    [
        (ColumnMap(), "Path,id", "no 'path' column (columns: Path, id); did you mean 'Path'? "
         "Name the column with --path-column."),
        (ColumnMap(path="image"), "images,id", "no 'image' column (columns: images, id); did you mean "
         "'images'? Name the column with --path-column."),
        (ColumnMap(id="person_id"), "path,personid", "no 'person_id' column (columns: path, personid); did "
         "you mean 'personid'? Name the id column with --id-column."),
        (ColumnMap(file_name="name"), "path,Names", "no 'name' column (columns: path, Names); did you mean "
         "'Names'? Name the file-name column with --file-name-column."),
        (ColumnMap(), "file,id", "no 'path' column (columns: file, id); name the column with --path-column."),
    ],
    ids=["case", "plural", "underscore", "file_name_case", "nothing_close"],
)
def test_a_missing_column_gets_the_closest_name(
    tmp_path: Path, columns: ColumnMap, header: str, expected: str
) -> None:
    with pytest.raises(ManifestError) as err:
        Manifest.open(write(tmp_path / "m.csv", header + "\n"), columns)
    assert str(err.value) == f"The manifest has {expected}"


def test_messages_name_flags_the_python_api_can_translate(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as err:
        Manifest.open(write(tmp_path / "m.csv", "Path\n"))
    assert python_message(str(err.value)).endswith("Name the column with path_column=.")
    with pytest.raises(ManifestError) as err:
        Manifest.open(pa.table({"id": ["a", None], "path": ["x", "y"]})).scan()
    assert "path_column" not in python_message(str(err.value))
    assert "id_column=None" in python_message(str(err.value))


def test_a_quoted_crlf_on_a_block_boundary_keeps_both_bytes(tmp_path: Path) -> None:
    # Rows of growing length put the quoted CRLF of some row across every offset of a 64-byte block.
    notes = ["x" * k + "\r\nend" for k in range(70)]
    text = "path,note\n" + "".join(f'{i}.jpg,"{note}"\r\n' for i, note in enumerate(notes))
    for block_size in (64, 100):
        m = Manifest.open(write(tmp_path / "m.csv", text), block_size=block_size)
        assert table_of(m)["note"].to_pylist() == notes


# -- properties ------------------------------------------------------------------------------------
_CELL = st.one_of(
    st.sampled_from([*NA_LIKE, "", " ", '"', '""', "a,b", "a;b", "a\tb", "line\nbreak", "cr\rlf\r\n", "007", "-0"]),
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.lists(_CELL, min_size=2, max_size=2), min_size=0, max_size=25),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    block_size=st.sampled_from([64, 1 << 20]),
    batch_size=st.integers(1, 7),
)
def test_csv_cells_round_trip_cell_for_cell(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]], quoting: int, block_size: int, batch_size: int
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=quoting)
    writer.writerow(["path", "id", "note"])
    writer.writerows([f"p{i}", *row] for i, row in enumerate(rows))
    path = tmp_path_factory.mktemp("rt") / "m.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    m = Manifest.open(path, ColumnMap(id=None), batch_size=batch_size, block_size=block_size)
    got = table_of(m)
    assert got.num_rows == len(rows)
    for i, name in enumerate(("id", "note")):  # the "id" column is not the key here: cells may repeat
        written = [row[i] or None for row in rows]
        read = got[name].to_pylist()
        if m.schema.field(name).type == pa.int64():
            read = [None if v is None else str(v) for v in read]
        assert read == written
