"""The byte budget through the stages: fetched bytes stay counted while they wait for the image stage (in the
``fetched`` pipe, or in a fetch task waiting to hand them on), the image stage gives them back once it is done
with them, prepared images are held until their upload ends (``PrepareStage.release``), and a stopped run's
dropped jobs give theirs back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aiohttp import web
from helpers import serve_app

from pipeline.engines.engine import LocalEngine
from pipeline.fetch import Fetcher, FetchSettings, SourceRef
from pipeline.journal import Journal
from pipeline.models import Row
from pipeline.progress import Progress
from pipeline.python_api import make_settings
from pipeline.runner.context import RunContext
from pipeline.runner.control import RunControl
from pipeline.runner.plan import Why
from pipeline.runner.recorder import Recorder
from pipeline.runner.records import Job, Pipe, Ready
from pipeline.runner.stages import FetchStage, PrepareStage
from pipeline.samples import make_jpeg

PHOTOS = [make_jpeg(None, 300, 280 + n, seed=n, quality=70) for n in range(8)]
SIZE = max(len(p) for p in PHOTOS)


@pytest.fixture
async def photos() -> AsyncIterator[str]:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=PHOTOS[int(request.match_info["n"])])

    app = web.Application()
    app.router.add_get("/p/{n}", serve)
    async with serve_app(app) as url:
        yield url.removeprefix("http://")


async def _settle(check: Callable[[], bool]) -> None:
    """Wait (bounded) until ``check()`` holds: the stages run on this loop, so yielding lets them move."""
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the stages never reached the state the test waits for")


async def _jobs(host: str, count: int) -> Pipe[Job]:
    inbox: Pipe[Job] = Pipe(count + 1)
    for n in range(count):
        ref = SourceRef("http", host, f"/p/{n}")
        await inbox.put(Job(Row(n, f"k{n}", ref.url, ref), Why.NEW, None))
    await inbox.close()
    return inbox


async def test_fetched_bytes_stay_counted_until_the_image_stage_is_done(photos: str, tmp_path: Path) -> None:
    budget = 3 * SIZE + SIZE // 2  # room for three photos, not four
    inbox = await _jobs(photos, 8)
    fetched: Pipe[Job] = Pipe(2)  # the image stage is late: nobody reads this pipe yet
    ready: Pipe[Ready] = Pipe(8)
    settings = make_settings(workspace="ws", endpoint="http://127.0.0.1:9", credentials=("a", "b"),
                             prepared_max_bytes=10 * SIZE, progress=False)
    with Journal.open(tmp_path / "j.sqlite", workspace="ws") as journal, \
            ThreadPoolExecutor(2) as pool:
        ctx = RunContext(settings, journal, Recorder(journal, Progress(8, enabled=False)), RunControl(),
                         time.monotonic, "run-1")
        async with Fetcher(FetchSettings(fetch_concurrency=4, fetch_max_bytes_in_flight=budget)) as fetcher:
            fetch = asyncio.create_task(FetchStage(ctx, fetcher, inbox, fetched).run())
            # Two photos in the pipe and one waiting to be handed on: all three still held, the rest wait.
            await _settle(lambda: fetcher.budget.in_use > 2 * SIZE)
            await asyncio.sleep(0.2)
            assert fetcher.stats.fetched == 3 and 3 * min(map(len, PHOTOS)) <= fetcher.budget.in_use <= budget

            prep = PrepareStage(ctx, LocalEngine(pool, 2), fetched, ready)
            prepare = asyncio.create_task(prep.run())
            await asyncio.wait_for(asyncio.gather(fetch, prepare), 20)
            assert fetcher.stats.fetched == 8 and fetcher.budget.in_use == 0  # every source given back
            assert fetcher.budget.peak <= budget

            # Prepared images are held until their upload ends (the upload stage calls ``Ready.settle``).
            items = []
            while (item := await ready.get()) is not None:
                assert item.job.data is None and item.job.lease is None  # no source bytes ride to the upload
                items.append(item)
            assert len(items) == 8
            assert prep.prepared.in_use == sum(len(i.prepared.data) for i in items)
            for item in items:
                item.settle("key")
                item.settle(None)  # idempotent: a finally may settle again
            assert prep.prepared.in_use == 0 and prep.contents.waiting == 0


async def test_jobs_dropped_after_a_stop_give_their_bytes_back(photos: str, tmp_path: Path) -> None:
    inbox = await _jobs(photos, 4)
    fetched: Pipe[Job] = Pipe(8)
    settings = make_settings(workspace="ws", endpoint="http://127.0.0.1:9", credentials=("a", "b"), progress=False)
    with Journal.open(tmp_path / "j.sqlite", workspace="ws") as journal, ThreadPoolExecutor(1) as pool:
        control = RunControl()
        ctx = RunContext(settings, journal, Recorder(journal, Progress(4, enabled=False)), control, time.monotonic,
                         "run-1")
        async with Fetcher(FetchSettings()) as fetcher:
            await FetchStage(ctx, fetcher, inbox, fetched).run()
            assert fetcher.budget.in_use == sum(map(len, PHOTOS[:4]))  # all four wait for the image stage
            control.stopping.set()  # a stop: the image stage takes no more jobs
            await PrepareStage(ctx, LocalEngine(pool, 2), fetched, Pipe(4)).run()
            assert fetcher.budget.in_use == 0
