"""What a Python caller sees: errors that name keywords (never flags), every input either read or refused in
one sentence (Arrow stream tables read), integer results as pandas' nullable Int64, and an https:// endpoint
that is plain HTTP named as such."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from pipeline import ingest, ingest_async
from pipeline.emulator import Emulator
from pipeline.errors import ConfigError, EndpointUnreachableError
from pipeline.models import Credentials
from pipeline.samples import make_jpeg

DRY = {"workspace": "w", "dry_run": True, "progress": False}


class ArrowStream:
    """A table known only by the Arrow PyCapsule stream interface, as polars or DuckDB offer it."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self._table.__arrow_c_stream__(requested_schema)


def _photos(tmp_path: Path) -> pa.Table:
    make_jpeg(tmp_path / "a.jpg", 320, 300, seed=1, quality=70)
    (tmp_path / "small.jpg").write_bytes(make_jpeg(None, 90, 90))
    return pa.table({"id": ["a", "s"], "path": [str(tmp_path / "a.jpg"), str(tmp_path / "small.jpg")],
                     "who": ["Ann", "Bo"]})


def _message(source: Any, **options: Any) -> str:
    with pytest.raises(ConfigError) as info:
        ingest(source, **(DRY | options))  # the checks come first: no out= needed
    message = str(info.value)
    assert "--" not in message, message  # a keyword, never a flag
    assert "\n" not in message and message.endswith("."), message
    return message


def test_a_missing_path_column_names_the_keyword(tmp_path: Path) -> None:
    message = _message(_photos(tmp_path), path_column="photo")
    assert "path_column=" in message


@pytest.mark.parametrize(("keyword", "column"), [
    ("id_column", "key"), ("file_name_column", "name"), ("person_column", "person_name"),
    ("person_id_column", "pid"), ("primary_column", "main"),
])
def test_a_missing_optional_column_names_its_keyword(tmp_path: Path, keyword: str, column: str) -> None:
    assert f"{keyword}=" in _message(_photos(tmp_path), **{keyword: column})


def test_an_empty_id_suggests_id_column_none(tmp_path: Path) -> None:
    table = pa.table({"id": ["a", None], "path": ["x.jpg", "y.jpg"]})
    assert "id_column=None" in _message(table)


def test_a_root_that_is_no_folder_is_quoted_as_the_keyword(tmp_path: Path) -> None:
    message = _message(_photos(tmp_path), root=str(tmp_path / "nowhere"))
    assert f"root={str(tmp_path / 'nowhere')!r}" in message


def test_a_remote_root_problem_names_the_keyword(tmp_path: Path) -> None:
    assert _message(_photos(tmp_path), root="s3://").startswith("root='s3://'")


def test_a_bad_endpoint_names_the_keyword(tmp_path: Path) -> None:
    assert _message(_photos(tmp_path), endpoint="ftp://h").startswith("endpoint=")


def test_no_photo_found_names_root(tmp_path: Path) -> None:
    table = pa.table({"path": ["missing.jpg"]})
    assert "root=" in _message(table, root=str(tmp_path), out=tmp_path / "r.parquet")


@pytest.mark.parametrize(("source", "hint"), [
    ([{"path": "a.jpg"}], "pyarrow.Table.from_pylist(rows)"),
    ({"path": ["a.jpg"]}, "pyarrow.table(columns)"),
    (3, "got int"),
    (None, "got NoneType"),
    (b"path\na.jpg\n", "got bytes"),
])
def test_input_it_cannot_read_is_one_sentence_naming_what_it_accepts(source: Any, hint: str) -> None:
    message = _message(source)
    assert "Arrow stream interface" in message and "pandas DataFrame" in message and hint in message


def test_a_table_with_the_arrow_stream_interface_is_read(tmp_path: Path) -> None:
    summary = ingest(ArrowStream(_photos(tmp_path)), out=tmp_path / "r.parquet", **DRY)
    assert summary.results is not None
    assert summary.results.column("who").to_pylist() == ["Ann", "Bo"]
    assert summary.by_status == {"skipped": 1, "rejected": 1}


def test_an_arrow_stream_with_repeated_columns_is_refused(tmp_path: Path) -> None:
    table = pa.Table.from_arrays([pa.array(["a.jpg"]), pa.array(["b.jpg"])], names=["path", "path"])
    assert "give every column its own name" in _message(ArrowStream(table))


def test_integer_results_come_back_as_nullable_int64(tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    summary = ingest(_photos(tmp_path), out=out, **DRY)
    assert summary.results is not None
    for frame in (summary.results.to_pandas(), pd.read_parquet(out)):
        assert list(frame["status"]) == ["skipped", "rejected"]
        for column in ("width", "height", "bytes", "attempts"):
            assert str(frame[column].dtype) == "Int64", column
        assert frame["width"].iloc[0] == 320 and frame["width"].isna().iloc[1]


def test_input_integer_columns_keep_their_dtype(tmp_path: Path) -> None:
    table = _photos(tmp_path).append_column("n", pa.array([1, 2], pa.int64()))
    summary = ingest(table, out=tmp_path / "r.parquet", **DRY)
    assert summary.results is not None
    assert str(summary.results.to_pandas()["n"].dtype) == "int64"


async def test_https_against_a_plain_http_port_says_so(emulator: Emulator, tmp_path: Path) -> None:
    endpoint = emulator.base_url.replace("http://", "https://")
    with pytest.raises(EndpointUnreachableError) as info:
        await ingest_async(_photos(tmp_path), workspace=emulator.workspace, endpoint=endpoint,
                           credentials=emulator.credentials, progress=False)
    message = str(info.value)
    assert "plain HTTP" in message and f"endpoint='{emulator.base_url}'" in message and "--" not in message


def test_sizes_are_accepted_in_units_as_keywords(tmp_path: Path) -> None:
    from pipeline.python_api import make_settings

    settings = make_settings(workspace="w", credentials=Credentials("a", "b"), source_max_bytes="50MB",
                             fetch_max_bytes_in_flight="1.5GiB", max_input_bytes=2048)
    assert settings.fetch.source_max_bytes == 50_000_000
    assert settings.fetch.fetch_max_bytes_in_flight == 3 * 2**29
    assert settings.policy.max_input_bytes == 2048
    with pytest.raises(ConfigError, match=r"^source_max_bytes= expected a size"):
        make_settings(workspace="w", credentials=Credentials("a", "b"), source_max_bytes="lots")
