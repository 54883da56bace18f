"""Photos from object storage and the web (issue 14): s3:// and http(s):// rows through the whole run."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from aiohttp import web
from helpers import MakeEmulator, serve_app
from s3_fixtures import MotoS3, moto_s3

from pipeline import runner
from pipeline.emulator import EmulatorConfig
from pipeline.python_api import make_settings
from pipeline.samples import make_jpeg

FAST = {"rate": 0.0, "confirm_rate": 0.0, "confirm": False, "progress": False}


@pytest.fixture
def s3() -> MotoS3:
    with moto_s3() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def web_photo() -> AsyncIterator[tuple[str, bytes]]:
    """One photo served over loopback HTTP, with an ETag."""
    data = make_jpeg(None, 320, 300, seed=42, quality=70)

    async def photo(_request: web.Request) -> web.Response:
        return web.Response(body=data, content_type="image/jpeg", headers={"ETag": '"w1"'})

    app = web.Application()
    app.router.add_get("/photos/w.jpg", photo)
    async with serve_app(app) as url:
        yield f"{url}/photos/w.jpg", data


async def test_remote_rows_upload_their_own_bytes_and_resume_by_etag(
    s3: MotoS3, web_photo: tuple[str, bytes], make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator(EmulatorConfig(storage="memory", rate=0, confirm_rate=0))
    originals = {}
    for i in range(4):
        originals[f"p{i}.jpg"] = data = make_jpeg(None, 300 + i, 280, seed=i, quality=70)
        s3.put(f"people/p{i}.jpg", data)
    url, web_bytes = web_photo
    rows = [f"s3://{s3.bucket}/people/p{i}.jpg" for i in range(4)]
    rows += [url, f"s3://{s3.bucket}/people/missing.jpg", "ftp://example.invalid/a.jpg",
             "http://169.254.169.254/latest/meta-data/photo.jpg"]
    manifest = tmp_path / "remote.csv"
    manifest.write_text("path\n" + "\n".join(rows) + "\n")
    settings = make_settings(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
                             s3_endpoint=s3.endpoint, **FAST)

    first = await runner.run_async(settings, manifest)
    results = pq.read_table(first.results_path).to_pylist()
    assert [r["status"] for r in results] == ["uploaded"] * 5 + ["rejected"] * 3
    assert [r["reason"] for r in results[5:]] == ["not_found", "unsupported_source", "unsupported_source"]
    assert "link-local" in results[7]["detail"]  # the cloud metadata service is never asked
    sources = [*originals.values(), web_bytes]
    for r, data in zip(results[:5], sources, strict=True):  # byte-identical to the objects they came from
        assert r["source_sha256"] == hashlib.sha256(data).hexdigest()
        stored = emu.objects[r["thumbnail_key"]].read()
        assert stored == data
    assert first.exit_code == 0

    emu.reset_counters()
    again = await runner.run_async(settings, manifest)
    assert emu.counters.snapshot(arrivals=False)["put_calls"] == 0
    assert again.planned["finished"] == 5

    s3.put("people/p2.jpg", make_jpeg(None, 333, 290, seed=99, quality=70))  # one object changes
    third = await runner.run_async(settings, manifest)
    assert emu.counters.snapshot(arrivals=False)["put_calls"] == 1
    assert third.planned["changed"] == 1
    after = pq.read_table(third.results_path).to_pylist()
    assert after[2]["thumbnail_key"] != results[2]["thumbnail_key"]
    assert [a["thumbnail_key"] for i, a in enumerate(after[:5]) if i != 2] == \
        [r["thumbnail_key"] for i, r in enumerate(results[:5]) if i != 2]


async def test_a_manifest_in_object_storage_with_paths_relative_to_it(
    s3: MotoS3, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator(EmulatorConfig(storage="hash", rate=0, confirm_rate=0))
    for i in range(3):
        s3.put(f"people/p{i}.jpg", make_jpeg(None, 300, 280 + i, seed=i, quality=70))
    s3.put("people/list.csv", b"id,path\nr0,p0.jpg\nr1,p1.jpg\nr2,p2.jpg\n")
    settings = make_settings(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
                             s3_endpoint=s3.endpoint, out=tmp_path / "r.parquet", journal=tmp_path / "j.sqlite",
                             **FAST)
    summary = await runner.run_async(settings, f"s3://{s3.bucket}/people/list.csv")
    assert summary.by_status == {"uploaded": 3} and summary.exit_code == 0
    rows = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert [r["id"] for r in rows] == ["r0", "r1", "r2"]
    assert emu.counters.snapshot(arrivals=False)["put_calls"] == 3


async def test_fetched_bytes_waiting_for_the_image_stage_are_bounded(tmp_path: Path) -> None:
    """When the image stage does not keep up, the fetch stage stops fetching: at most --fetch-concurrency
    fetched sources wait, plus what the pipe holds, never the rest of the manifest."""
    from pipeline.fetch import Fetcher, FetchSettings, SourceRef
    from pipeline.journal import Journal
    from pipeline.models import Row
    from pipeline.progress import Progress
    from pipeline.runner.context import RunContext
    from pipeline.runner.control import RunControl
    from pipeline.runner.plan import Why
    from pipeline.runner.recorder import Recorder
    from pipeline.runner.records import Job, Pipe
    from pipeline.runner.stages import FetchStage

    body = b"x" * 100_000
    requests = 0
    past_bound = asyncio.Event()
    concurrency, held = 4, 1

    async def serve(_request: web.Request) -> web.Response:
        nonlocal requests
        requests += 1
        if requests > concurrency + held:
            past_bound.set()
        return web.Response(body=body)

    app = web.Application()
    app.router.add_get("/{name}", serve)
    async with serve_app(app) as url:
        host = url.removeprefix("http://")
        inbox: Pipe[Job] = Pipe(200)
        outbox: Pipe[Job] = Pipe(held)  # nobody reads it: the image stage is "slow"
        for i in range(100):
            ref = SourceRef("http", host, f"/p{i}.jpg")
            await inbox.put(Job(Row(i, f"k{i}", ref.url, ref), Why.NEW, None))
        await inbox.close()
        with Journal.open(tmp_path / "j.sqlite", workspace="ws") as journal:
            async with Fetcher(FetchSettings(fetch_concurrency=concurrency)) as fetcher:
                ctx = RunContext(make_settings(workspace="ws", endpoint="http://127.0.0.1:9", credentials=("a", "b")),
                                 journal, Recorder(journal, Progress(100, enabled=False)), RunControl(),
                                 time.monotonic, "run-1")
                stage = FetchStage(ctx, fetcher, inbox, outbox)
                task = asyncio.create_task(stage.run())
                with pytest.raises(asyncio.TimeoutError):  # a bounded wait for what must not happen
                    await asyncio.wait_for(past_bound.wait(), 2.0)
                assert requests <= concurrency + held + 1
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
