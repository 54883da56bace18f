"""``gs://`` sources through obstore's GCSStore against a fake GCS server on loopback (``gcs_fixtures``):
bytes, stamps, the reasons (``not_found``, ``access_denied``), the early stop on refusals, and a whole run."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from gcs_fixtures import FakeGCS, fake_gcs
from helpers import MakeEmulator

from pipeline import runner
from pipeline.emulator import EmulatorConfig
from pipeline.errors import FatalApiError
from pipeline.fetch import Fetched, Fetcher, FetchRejected, FetchSettings, SourceAccessError, SourceRef, parse_source
from pipeline.python_api import make_settings
from pipeline.samples import make_jpeg

OBJECTS = {"people/a b+c.jpg": make_jpeg(None, 300, 290, seed=1, quality=70),
           "people/sub/d.jpg": make_jpeg(None, 310, 280, seed=2, quality=70)}


async def _no_wait(_: float) -> None:
    """Backoff without waiting: tests count retries, they do not time them."""


@pytest.fixture
async def gcs() -> AsyncIterator[FakeGCS]:
    async with fake_gcs() as server:
        for name, data in OBJECTS.items():
            server.put("photos", name, data)
        server.put("photos", "people/secret.jpg", b"no")
        server.deny("photos", "people/secret.jpg")
        yield server


def _ref(cell: str) -> SourceRef:
    ref = parse_source(cell, base=None, root=None)
    assert isinstance(ref, SourceRef), ref
    return ref


async def test_gs_objects_arrive_byte_identical_with_their_etag(gcs: FakeGCS) -> None:
    async with Fetcher(FetchSettings(), sleep=_no_wait) as fetcher:
        for name, data in OBJECTS.items():
            got = await fetcher.fetch(_ref(f"gs://photos/{name}"))
            assert isinstance(got, Fetched) and got.data == data
            assert got.stamp.value == f'etag:"{hashlib.md5(data).hexdigest()}"' and got.stamp.size == len(data)
            assert await fetcher.stat(_ref(f"gs://photos/{name}")) == got.stamp
    assert ("GET", "photos/people/a b+c.jpg") in gcs.seen and ("HEAD", "photos/people/a b+c.jpg") in gcs.seen


async def test_missing_and_denied_objects_are_their_reasons_without_retries(gcs: FakeGCS) -> None:
    async with Fetcher(FetchSettings(), sleep=_no_wait) as fetcher:
        missing = await fetcher.fetch(_ref("gs://photos/people/nobody.jpg"))
        denied = await fetcher.fetch(_ref("gs://photos/people/secret.jpg"))
    assert isinstance(missing, FetchRejected) and missing.reason == "not_found" and "HTTP 404" in missing.detail
    assert isinstance(denied, FetchRejected) and denied.reason == "access_denied" and "HTTP 403" in denied.detail
    assert fetcher.stats.retries == 0 and fetcher.stats.requests == 2


async def test_a_wrong_token_stops_the_run_after_a_handful_of_requests() -> None:
    async with fake_gcs(token="expired-token-value") as gcs:
        gcs.put("photos", "a.jpg", b"x")
        raised: SourceAccessError | None = None
        denied = []
        async with Fetcher(FetchSettings(), sleep=_no_wait) as fetcher:
            for _ in range(20):
                try:
                    got = await fetcher.fetch(_ref("gs://photos/a.jpg"))
                except SourceAccessError as exc:
                    raised = exc
                    break
                assert isinstance(got, FetchRejected) and got.reason == "access_denied"
                denied.append(got.detail)
    assert isinstance(raised, FatalApiError) and "gs://photos" in str(raised) and "401" in str(raised)
    assert len(denied) == fetcher.settings.fatal_after - 1 and len(gcs.seen) == fetcher.settings.fatal_after
    assert all("expired-token-value" not in text for text in [*denied, str(raised)])


async def test_an_unknown_bucket_is_not_found_then_stops_the_run(gcs: FakeGCS) -> None:
    async with Fetcher(FetchSettings(), sleep=_no_wait) as fetcher:
        first = await fetcher.fetch(_ref("gs://no-such-bucket/a.jpg"))
        assert isinstance(first, FetchRejected) and first.reason == "not_found" and "NoSuchBucket" in first.detail
        with pytest.raises(SourceAccessError):
            for n in range(fetcher.settings.fatal_after):
                await fetcher.fetch(_ref(f"gs://no-such-bucket/{n}.jpg"))


async def test_gs_rows_under_a_gs_root_upload_byte_identical(
    gcs: FakeGCS, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator(EmulatorConfig(storage="memory", rate=0, confirm_rate=0))
    manifest = tmp_path / "m.csv"
    cells = ["a b+c.jpg", "gs://photos/people/sub/d.jpg", "secret.jpg", "nobody.jpg", "../elsewhere.jpg"]
    manifest.write_text("id,path\n" + "".join(f"r{i},{c}\n" for i, c in enumerate(cells)))
    settings = make_settings(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
                             root="gs://photos/people", rate=0.0, confirm_rate=0.0, confirm=False, progress=False)
    summary = await runner.run_async(settings, manifest)
    assert summary.results_path is not None and summary.exit_code == 0
    rows = pq.read_table(summary.results_path).to_pylist()
    assert [(r["status"], r["reason"]) for r in rows] == [
        ("uploaded", None), ("uploaded", None), ("rejected", "access_denied"), ("rejected", "not_found"),
        ("rejected", "outside_root")]
    for row, data in zip(rows[:2], OBJECTS.values(), strict=True):
        assert emu.objects[row["thumbnail_key"]].read() == data
        assert row["source_sha256"] == hashlib.sha256(data).hexdigest()
