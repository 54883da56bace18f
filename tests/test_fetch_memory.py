"""Memory stays flat: a child process fetches many 20 MB sources at concurrency 32 and reports its own
peak RSS (``VmHWM``), before and after fetching. Sizes are bounds generous enough not to flake; the
measured figures are in ``bench/bench_fetch.py``'s results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from s3_fixtures import fetch_in_child, moto_s3

MB = 1 << 20
BLOB = bytes(range(256)) * (20 * MB // 256)


@pytest.fixture
async def blobs() -> AsyncIterator[str]:
    async def serve(_: web.Request) -> web.Response:
        return web.Response(body=BLOB)

    app = web.Application()
    app.router.add_get("/o/{n}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_the_byte_budget_keeps_memory_flat_over_http(blobs: str) -> None:
    cells = [f"{blobs}/o/{n}" for n in range(40)]
    report = await asyncio.to_thread(fetch_in_child, cells, fetch_concurrency=32, fetch_max_bytes_in_flight=64 * MB)
    assert report.fetched == 40 and report.bytes == 40 * len(BLOB)
    assert report.budget_peak <= 64 * MB
    # Measured: ~100 MB of growth under a 64 MB budget, ~570 MB without one (32 bodies of 20 MB at once).
    assert report.peak_rss - report.baseline_rss < 300 * MB


@pytest.mark.slow
def test_200_objects_of_20_mb_from_s3_at_concurrency_32() -> None:
    with moto_s3() as s3:
        keys = [f"big/{n}.bin" for n in range(200)]
        for key in keys:  # moto ingests ~50 MB/s: this loop is most of the test's minute
            s3.put(key, BLOB)
        report = fetch_in_child([f"s3://{s3.bucket}/{key}" for key in keys], s3_endpoint=s3.endpoint,
                                fetch_concurrency=32)
    assert report.fetched == 200 and report.bytes == 200 * len(BLOB)
    assert report.budget_peak <= 256 * MB
    assert report.peak_rss < 1536 * MB  # the measured figure: bench/bench_fetch.py
