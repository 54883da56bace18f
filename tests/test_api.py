"""The notebook API: sync and async, DataFrame and Table input, from inside a running event loop."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from pipeline import FatalApiError, ingest, ingest_async
from pipeline.config import Credentials
from pipeline.emulator import Emulator
from pipeline.samples import make_jpeg


def _frame(tmp_path: Path) -> pd.DataFrame:
    for i in range(4):
        make_jpeg(tmp_path / f"p{i}.jpg", 320, 300, seed=i, quality=70)
    (tmp_path / "small.jpg").write_bytes(make_jpeg(None, 90, 90))
    paths = [str(tmp_path / f"p{i}.jpg") for i in range(4)] + [str(tmp_path / "small.jpg")]
    return pd.DataFrame({"id": [10, 11, 12, 13, 14], "path": paths, "person": list("ABCDE")})


def _opts(emu: Emulator) -> dict[str, object]:
    return {"workspace": emu.workspace, "endpoint": emu.base_url, "credentials": emu.credentials,
            "progress": False}


async def test_async_twin_inside_the_running_loop(emulator: Emulator, tmp_path: Path) -> None:
    summary = await ingest_async(_frame(tmp_path), **_opts(emulator))
    assert summary.results is not None
    df = summary.results.to_pandas()
    assert list(df["id"]) == ["10", "11", "12", "13", "14"] or list(df["id"]) == [10, 11, 12, 13, 14]
    assert list(df["status"]) == ["uploaded"] * 4 + ["rejected"]
    assert list(df["person"]) == list("ABCDE")
    assert set(df["thumbnail_key"].dropna()) == set(emulator.objects)
    assert summary.results_path is None  # in-memory input and no out=: nothing written to disk


async def test_sync_ingest_called_from_a_running_loop(emulator_thread: Emulator, tmp_path: Path) -> None:
    # As in a Jupyter cell: a loop is running in this thread, and the user calls the sync function.
    table = pa.Table.from_pandas(_frame(tmp_path), preserve_index=False)
    summary = ingest(table, out=tmp_path / "r.csv", **_opts(emulator_thread))
    assert summary.by_status == {"uploaded": 4, "rejected": 1}
    assert (tmp_path / "r.csv").read_text().count("\n") == 6
    assert summary.results is not None and summary.results.num_rows == 5


def test_fatal_answer_raises_with_the_summary(emulator_thread: Emulator, tmp_path: Path) -> None:
    opts = _opts(emulator_thread) | {"credentials": Credentials(emulator_thread.credentials.access_key, "wrong")}
    with pytest.raises(FatalApiError) as info:
        ingest(_frame(tmp_path), **opts)
    assert info.value.summary.exit_code == 3  # type: ignore[attr-defined]
    assert "wrong" not in str(info.value)
