"""The fetch stage against a local HTTP server (an aiohttp app on loopback): bytes, redirects, the
link-local refusal, reasons, size limits, timeouts and injected faults."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from helpers import serve_app

from pipeline.fetch import Fetched, Fetcher, FetchRejected, FetchSettings, SourceRef, SourceStamp, parse_source
from pipeline.fetch.addresses import is_refused_address
from pipeline.fetch.web import AddressRefused, _SafeResolver

OBJECTS = {f"p{n}.jpg": hashlib.sha256(bytes([n])).digest() * (4096 + 1000 * n) for n in range(6)}


async def _no_wait(_: float) -> None:
    """Backoff without waiting: tests count retries, they do not time them."""


class Site:
    """The test server's state: requests per path, the fault to inject, and an event that never fires
    until teardown (for a server that stays silent)."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.release = asyncio.Event()
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/img/{name}", self.image)
        app.router.add_get("/hop/{n}/{name}", self.hop)
        app.router.add_get("/to", self.to)
        app.router.add_get("/status/{code}", self.status)
        app.router.add_get("/flaky/{mode}/{name}", self.flaky)
        app.router.add_get("/stream/{size}", self.stream)
        app.router.add_get("/huge", self.huge)
        app.router.add_get("/silent", self.silent)
        return app

    async def image(self, request: web.Request) -> web.StreamResponse:
        self.seen[request.path] = self.seen.get(request.path, 0) + 1
        data = OBJECTS[request.match_info["name"]]
        return web.Response(body=data, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})

    async def hop(self, request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        name = request.match_info["name"]
        raise web.HTTPFound(f"/hop/{n - 1}/{name}" if n > 1 else f"/img/{name}")

    async def to(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(request.query["where"])

    async def status(self, request: web.Request) -> web.StreamResponse:
        self.seen[request.path] = self.seen.get(request.path, 0) + 1
        return web.Response(status=int(request.match_info["code"]), text="nope")

    async def flaky(self, request: web.Request) -> web.StreamResponse:
        count = self.seen[request.path] = self.seen.get(request.path, 0) + 1
        mode, data = request.match_info["mode"], OBJECTS[request.match_info["name"]]
        if count <= 2 and mode in ("503", "429"):
            return web.Response(status=int(mode), headers={"Retry-After": "0"})
        if count <= 2 and mode == "drop":
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError("dropped on purpose")
        response = web.StreamResponse()
        response.content_length = len(data)
        await response.prepare(request)
        if count <= 2 and mode == "cut":
            await response.write(data[: len(data) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(data)
        await response.write_eof()
        return response

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """A body without Content-Length (chunked), of the size asked."""
        response = web.StreamResponse()
        await response.prepare(request)
        left = int(request.match_info["size"])
        while left > 0:
            piece = min(left, 64 * 1024)
            await response.write(b"z" * piece)
            left -= piece
        await response.write_eof()
        return response

    async def huge(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(10**12)})
        await response.prepare(request)
        await self.release.wait()
        return response

    async def silent(self, request: web.Request) -> web.StreamResponse:
        await self.release.wait()
        return web.Response(text="late")


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    state = Site()
    async with serve_app(state.app()) as state.url:
        try:
            yield state
        finally:
            state.release.set()


def _ref(url: str) -> SourceRef:
    ref = parse_source(url, base=None, root=None)
    assert isinstance(ref, SourceRef), ref
    return ref


async def _fetch(url: str, settings: FetchSettings | None = None) -> tuple[Fetched | FetchRejected, Fetcher]:
    async with Fetcher(settings or FetchSettings(fetch_retries=3), sleep=_no_wait) as fetcher:
        return await fetcher.fetch(_ref(url)), fetcher


async def test_bytes_arrive_identical_with_a_stamp_head_agrees_with(site: Site) -> None:
    async with Fetcher(sleep=_no_wait) as fetcher:
        for name, data in OBJECTS.items():
            got = await fetcher.fetch(_ref(f"{site.url}/img/{name}"))
            assert isinstance(got, Fetched) and got.data == data and got.size == len(data)
            assert got.stamp.value == f'etag:"{hashlib.md5(data).hexdigest()}"'
            assert await fetcher.stat(_ref(f"{site.url}/img/{name}")) == got.stamp
        # aiohttp pools connections: six sources, twelve requests, one host
        assert fetcher.stats.connections < fetcher.stats.requests


async def test_five_redirects_are_followed_and_a_sixth_is_not(site: Site) -> None:
    got, _ = await _fetch(f"{site.url}/hop/5/p1.jpg")
    assert isinstance(got, Fetched) and got.data == OBJECTS["p1.jpg"]
    got, _ = await _fetch(f"{site.url}/hop/6/p1.jpg")
    assert isinstance(got, FetchRejected) and got.reason == "fetch_failed" and "5 redirects" in got.detail
    assert site.seen["/img/p1.jpg"] == 1  # reached by the first chain only


async def test_a_redirect_to_a_file_url_is_never_followed(site: Site) -> None:
    got, _ = await _fetch(f"{site.url}/to?where=file:///etc/passwd")
    assert isinstance(got, FetchRejected) and got.reason == "unsupported_source" and "file://" in got.detail


# Every spelling of a metadata service; 0xa9fea9fe is a name the system resolver reads as 169.254.169.254.
METADATA_HOSTS = ["169.254.169.254", "[fe80::1]", "[fe80::1%25eth0]", "[::ffff:169.254.169.254]", "[fd00:ec2::254]",
                  "[::169.254.169.254]", "[::ffff:0:a9fe:a9fe]", "[64:ff9b::a9fe:a9fe]", "[2002:a9fe:a9fe::]",
                  "100.100.100.200", "0xa9fea9fe"]


@pytest.mark.parametrize("host", METADATA_HOSTS)
async def test_link_local_and_metadata_addresses_are_refused_without_a_connection(host: str) -> None:
    got, fetcher = await _fetch(f"http://{host}/latest/meta-data/iam/security-credentials/")
    assert isinstance(got, FetchRejected) and got.reason == "unsupported_source" and "link-local" in got.detail
    assert fetcher.stats.connections == 0 and fetcher.stats.retries == 0


@pytest.mark.parametrize("host", METADATA_HOSTS)
async def test_a_redirect_to_the_metadata_service_is_refused(site: Site, host: str) -> None:
    got, fetcher = await _fetch(f"{site.url}/to?where=http://{host}/latest/meta-data/")
    assert isinstance(got, FetchRejected) and got.reason == "unsupported_source" and "link-local" in got.detail
    assert fetcher.stats.connections == 1  # the test server only


class FixedDNS(AbstractResolver):
    """Answers names from a table (the resolver seam): a test's stand-in for DNS, which it cannot change."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host not in self.table:
            raise OSError(f"{host}: no such name")
        return [ResolveResult(hostname=host, host=a, port=port, proto=0, flags=socket.AI_NUMERICHOST,
                              family=socket.AF_INET6 if ":" in a else socket.AF_INET) for a in self.table[host]]

    async def close(self) -> None:
        """Nothing to close."""


async def test_a_name_with_a_metadata_address_is_refused_directly_and_after_any_redirect(site: Site) -> None:
    # Each refused name also answers 127.0.0.1, where the site listens: any bypass would reach the site.
    dns = FixedDNS({"photos.test": ["127.0.0.1"], "imds.test": ["127.0.0.1", "fd00:ec2::254"],
                    "mapped.test": ["127.0.0.1", "::ffff:169.254.169.254"], "ll.test": ["127.0.0.1", "169.254.0.7"]})
    port = site.url.rsplit(":", 1)[1]
    async with Fetcher(FetchSettings(fetch_retries=3), sleep=_no_wait, resolver=dns) as fetcher:
        got = await fetcher.fetch(_ref(f"http://photos.test:{port}/img/p0.jpg"))
        assert isinstance(got, Fetched) and got.data == OBJECTS["p0.jpg"]  # the table is what answers
        cells = [f"http://imds.test:{port}/img/p1.jpg", f"{site.url}/to?where=http://mapped.test:{port}/img/p2.jpg",
                 f"http://photos.test:{port}/to?where=http://ll.test:{port}/img/p3.jpg"]
        answers = [await fetcher.fetch(_ref(cell)) for cell in cells]
    assert all(isinstance(a, FetchRejected) and a.reason == "unsupported_source" for a in answers), answers
    assert [path for path in site.seen if path.startswith("/img/")] == ["/img/p0.jpg"]
    assert fetcher.stats.retries == 0


def test_refused_addresses_in_every_spelling_and_nothing_else() -> None:
    for host in [h for h in METADATA_HOSTS if h != "0xa9fea9fe"] + ["fe80::1%eth0", "169.254.0.1", "FD00:EC2::254"]:
        assert is_refused_address(host.replace("%25", "%")), host
    for host in ["10.0.0.1", "127.0.0.1", "::1", "::", "2001:db8::1", "fd00::1", "64:ff9b::808:808",
                 "2002:808:808::", "::ffff:8.8.8.8", "100.100.100.201", "example.com", "0xa9fea9fe"]:
        assert not is_refused_address(host), host


async def test_the_resolver_refuses_a_name_with_a_refused_address() -> None:
    resolver = _SafeResolver()
    try:
        with pytest.raises(AddressRefused):
            await resolver.resolve("169.254.169.254", 80)
        with pytest.raises(AddressRefused):
            await resolver.resolve("0xa9fea9fe", 80)  # what the system resolver makes of it is checked
        assert (await resolver.resolve("127.0.0.1", 80))[0]["host"] == "127.0.0.1"
    finally:
        await resolver.close()


@pytest.mark.parametrize(("code", "reason"), [(404, "not_found"), (401, "access_denied"), (403, "access_denied"),
                                              (410, "fetch_failed")])
async def test_error_statuses_are_reasons_without_retries_or_secrets(site: Site, code: int, reason: str) -> None:
    async with Fetcher(sleep=_no_wait) as fetcher:
        for _ in range(10):  # a web host refusing is about those URLs: never stops the run
            got = await fetcher.fetch(_ref(f"{site.url}/status/{code}?X-Amz-Signature=s3cr3t&token=abc"))
            assert isinstance(got, FetchRejected) and got.reason == reason
            assert f"HTTP {code}" in got.detail and "s3cr3t" not in got.detail and "token" not in got.detail
    assert site.seen[f"/status/{code}"] == 10


async def test_server_errors_past_the_retries_are_fetch_failed(site: Site) -> None:
    got, fetcher = await _fetch(f"{site.url}/status/502", FetchSettings(fetch_retries=2))
    assert isinstance(got, FetchRejected) and got.reason == "fetch_failed"
    assert "HTTP 502" in got.detail and "3 attempts" in got.detail
    assert site.seen["/status/502"] == 3 and fetcher.stats.retries == 2


@pytest.mark.parametrize("mode", ["503", "429", "drop", "cut"])
async def test_injected_faults_are_recovered(site: Site, mode: str) -> None:
    got, fetcher = await _fetch(f"{site.url}/flaky/{mode}/p3.jpg")
    assert isinstance(got, Fetched) and got.data == OBJECTS["p3.jpg"]
    assert site.seen[f"/flaky/{mode}/p3.jpg"] == 3  # two failures, then the bytes
    # aiohttp itself resends once when a pooled connection turns out closed: 1 or 2 retries are ours
    assert fetcher.stats.retries >= 1 and fetcher.stats.requests == fetcher.stats.retries + 1


async def test_announced_size_over_the_limit_is_refused_unread(site: Site) -> None:
    got, fetcher = await _fetch(f"{site.url}/huge")
    assert isinstance(got, FetchRejected) and got.reason == "source_too_large"
    assert fetcher.budget.peak == 0


async def test_a_body_growing_past_the_limit_is_cut_off(site: Site) -> None:
    limit = FetchSettings(source_max_bytes=1_000_000)
    got, fetcher = await _fetch(f"{site.url}/stream/5000000", limit)
    assert isinstance(got, FetchRejected) and got.reason == "source_too_large"
    got, fetcher = await _fetch(f"{site.url}/stream/1000000", limit)
    assert isinstance(got, Fetched) and got.size == 1_000_000
    assert got.stamp == SourceStamp(None, 1_000_000)  # nothing identifies the version: resume must fetch
    assert fetcher.budget.peak == 1_000_000  # unannounced size: the limit is reserved


async def test_a_silent_server_times_out(site: Site) -> None:
    got, _ = await _fetch(f"{site.url}/silent", FetchSettings(fetch_timeout=0.2, fetch_retries=0))
    assert isinstance(got, FetchRejected) and got.reason == "fetch_failed" and "within 0.2 s" in got.detail


async def test_bytes_in_flight_stay_under_the_budget(site: Site) -> None:
    budget = 3 * max(len(d) for d in OBJECTS.values())
    settings = FetchSettings(fetch_concurrency=32, fetch_max_bytes_in_flight=budget)
    async with Fetcher(settings, sleep=_no_wait) as fetcher:
        refs = [_ref(f"{site.url}/img/{name}") for name in OBJECTS] * 20
        results = await asyncio.gather(*(fetcher.fetch(ref) for ref in refs))
    assert all(isinstance(r, Fetched) for r in results)
    assert 0 < fetcher.budget.peak <= budget and fetcher.budget.in_use == 0
