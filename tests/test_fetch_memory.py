"""Memory stays flat: a child process fetches many 20 MB sources at concurrency 32 and reports its own
peak RSS (``VmHWM``), before and after fetching, and the byte budget's peak. Sizes are bounds generous enough
not to flake; the measured figures are in ``bench/bench_fetch.py``'s results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from helpers import serve_app
from s3_fixtures import fetch_in_child, moto_s3

MB = 1 << 20
BLOB = bytes(range(256)) * (20 * MB // 256)


@pytest.fixture
async def blobs() -> AsyncIterator[str]:
    async def serve(_: web.Request) -> web.Response:
        return web.Response(body=BLOB)

    app = web.Application()
    app.router.add_get("/o/{n}", serve)
    async with serve_app(app) as url:
        yield url


@pytest.mark.slow  # 6 s of real transfers: make reliability
async def test_the_byte_budget_keeps_memory_flat_over_http(blobs: str) -> None:
    cells = [f"{blobs}/o/{n}" for n in range(40)]
    report = await asyncio.to_thread(fetch_in_child, cells, fetch_concurrency=32, fetch_max_bytes_in_flight=64 * MB)
    assert report.fetched == 40 and report.bytes == 40 * len(BLOB)
    assert report.budget_peak <= 64 * MB
    # Measured: ~100 MB of growth under a 64 MB budget, ~570 MB without one (32 bodies of 20 MB at once).
    assert report.peak_rss - report.baseline_rss < 300 * MB


@pytest.mark.slow  # real time (seconds of it): the reliability tier
def test_200_objects_of_20_mb_from_s3_at_concurrency_32() -> None:
    """4 GB through moto in a child process: memory grows by what the byte budget lets in, far less than what 32
    bodies of 20 MB at once take. Measured growth: ~150 MB under a 64 MB budget, ~560 MB without one."""
    budget = 64 * MB
    with moto_s3() as s3:
        keys = [f"big/{n}.bin" for n in range(200)]
        s3.seed(keys, BLOB)  # not through HTTP PUTs: they would be most of the test's time
        report = fetch_in_child([f"s3://{s3.bucket}/{key}" for key in keys], s3_endpoint=s3.endpoint,
                                fetch_concurrency=32, fetch_max_bytes_in_flight=budget)
    assert report.fetched == 200 and report.bytes == 200 * len(BLOB) and report.retries == 0
    assert 2 * len(BLOB) <= report.budget_peak <= budget  # several bodies at once, never more than the budget
    assert report.peak_rss - report.baseline_rss < 320 * MB
