"""The limiter slot of an API call is dated when the request's bytes go out, not when aiohttp serialises its
headers: for a request with a body aiohttp holds the headers back and writes them with the body from a task
that may start a loop iteration later, so dating at the headers counted calls as sent before they were."""

from __future__ import annotations

import time
from types import SimpleNamespace

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from pipeline.client.slots import RoundTrips, Slot
from pipeline.client.transport import _chunk_sent, _headers_sent, new_session
from pipeline.emulator import Emulator


class Ticks:
    """A clock that moves one second per read: which hook read it shows in the slot's time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


async def test_a_request_with_a_body_is_dated_by_its_first_chunk_one_without_by_its_headers() -> None:
    url = URL("http://127.0.0.1/x")
    async with aiohttp.ClientSession() as session:
        post = Slot(0.0, Ticks())
        ctx = SimpleNamespace(trace_request_ctx=post)
        await _headers_sent(session, ctx, aiohttp.TraceRequestHeadersSentParams(
            "POST", url, CIMultiDict({"Content-Length": "12"})))
        assert not post.sent  # the headers are only buffered
        await _chunk_sent(session, ctx, aiohttp.TraceRequestChunkSentParams("POST", url, b"{}"))
        await _chunk_sent(session, ctx, aiohttp.TraceRequestChunkSentParams("POST", url, b"{}"))
        assert post.sent and post.t == 1.0  # the first chunk dates it; later chunks do not move it
        get = Slot(0.0, Ticks())
        await _headers_sent(session, SimpleNamespace(trace_request_ctx=get), aiohttp.TraceRequestHeadersSentParams(
            "GET", url, CIMultiDict()))
        assert get.sent and get.t == 1.0


async def test_aiohttp_calls_the_hooks_for_a_real_post_and_get(emulator: Emulator) -> None:
    async with new_session(2) as session:
        for method, data in (("POST", b'{"fileName": "a.jpg"}'), ("GET", None)):
            slot = Slot(0.0, time.monotonic, RoundTrips())
            async with session.request(method, emulator.base_url + "/api/v1/workspaces/demo/thumbnails/presign",
                                       data=data, trace_request_ctx=slot) as resp:
                assert slot.sent and slot.answered, method  # dated by the hooks, before the caller reads
                answered_after = slot.rtt
                await resp.read()
            assert 0 < answered_after < 5, method
