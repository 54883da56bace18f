"""The byte budget's leases: bytes held past the call that took them (fetched, not yet prepared), shrunk to
what arrived, given back once; a request larger than the budget runs alone; the high-water mark never passes
the capacity. And ``Fetcher.fetch(hold=True)`` hands the lease on instead of giving the bytes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from helpers import serve_app

from pipeline.fetch import ByteBudget, Fetched, Fetcher, FetchSettings, SourceRef, parse_source
from pipeline.fetch.budget import Lease


async def test_a_lease_holds_its_bytes_until_released_once() -> None:
    budget = ByteBudget(100)
    first = await budget.acquire(70)
    assert isinstance(first, Lease) and budget.in_use == 70
    second = asyncio.create_task(budget.acquire(40))
    await asyncio.sleep(0)
    assert not second.done()  # 70 + 40 > 100: waits for the first lease
    first.shrink(50)  # the body turned out smaller than reserved: 20 bytes go back at once
    granted = await asyncio.wait_for(second, 1)
    assert budget.in_use == 90 and first.amount == 50
    first.shrink(80)  # never grows
    assert first.amount == 50
    first.release()
    first.release()  # idempotent: released bytes are never given back twice
    assert budget.in_use == 40
    granted.release()
    assert budget.in_use == 0 and budget.peak == 90


async def test_a_request_larger_than_the_budget_runs_alone_and_the_peak_never_passes_it() -> None:
    budget = ByteBudget(100)
    small = await budget.acquire(30)
    huge = asyncio.create_task(budget.acquire(10_000))
    behind = asyncio.create_task(budget.acquire(10))
    await asyncio.sleep(0)
    assert not huge.done() and not behind.done()  # FIFO: the small one behind the huge one waits too
    small.release()
    lease = await asyncio.wait_for(huge, 1)
    assert lease.amount == 100 and budget.in_use == 100  # clipped: it holds the whole budget, alone
    await asyncio.sleep(0)
    assert not behind.done()
    lease.release()
    (await asyncio.wait_for(behind, 1)).release()
    assert budget.peak == 100 and budget.in_use == 0


async def test_a_cancelled_waiter_at_the_head_lets_the_ones_behind_it_in() -> None:
    budget = ByteBudget(100)
    held = await budget.acquire(60)
    big = asyncio.create_task(budget.acquire(80))
    small = asyncio.create_task(budget.acquire(30))
    await asyncio.sleep(0)
    assert not small.done()  # fits, but waits its turn behind the big one
    big.cancel()
    got = await asyncio.wait_for(small, 1)  # the big one left the queue: the small one fits now
    with pytest.raises(asyncio.CancelledError):
        await big
    assert budget.in_use == 90
    got.release()
    held.release()
    assert budget.in_use == 0


@pytest.fixture
async def blobs() -> AsyncIterator[str]:
    async def sized(request: web.Request) -> web.Response:
        return web.Response(body=b"b" * int(request.match_info["n"]))

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"c" * int(request.match_info["n"]))
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/sized/{n}", sized)
    app.router.add_get("/chunked/{n}", chunked)
    async with serve_app(app) as url:
        yield url


def _ref(url: str) -> SourceRef:
    ref = parse_source(url, base=None, root=None)
    assert isinstance(ref, SourceRef)
    return ref


async def test_held_fetches_keep_their_bytes_in_the_budget_until_released(blobs: str) -> None:
    settings = FetchSettings(fetch_max_bytes_in_flight=10_000, source_max_bytes=8_000, fetch_timeout=10)
    async with Fetcher(settings) as fetcher:
        plain = await fetcher.fetch(_ref(f"{blobs}/sized/3000"))
        assert isinstance(plain, Fetched) and plain.lease is None and fetcher.budget.in_use == 0
        # Unannounced size: the limit (8000) is reserved while reading, then only what arrived is kept.
        unsized = await fetcher.fetch(_ref(f"{blobs}/chunked/1000"), hold=True)
        assert isinstance(unsized, Fetched) and unsized.size == 1000 and unsized.lease is not None
        assert fetcher.budget.in_use == 1000 and fetcher.budget.peak == 8000
        held = await fetcher.fetch(_ref(f"{blobs}/sized/6000"), hold=True)
        assert isinstance(held, Fetched) and held.lease is not None and fetcher.budget.in_use == 7000
        # A fourth source does not fit beside the held ones: it waits until one is released.
        waiting = asyncio.create_task(fetcher.fetch(_ref(f"{blobs}/sized/5000"), hold=True))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        held.lease.release()
        fourth = await asyncio.wait_for(waiting, 5)
        assert isinstance(fourth, Fetched) and fetcher.budget.in_use == 6000
        assert fetcher.budget.peak <= 10_000
        for got in (unsized, fourth):
            assert got.lease is not None
            got.lease.release()
        assert fetcher.budget.in_use == 0
