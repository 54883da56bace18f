"""Per-row faults stay per-row: a refusing bucket among working stores, S3 keys obstore cannot read as
written, gzip-encoded bodies (and bombs), web sources with no stamp, and presigned URLs' row keys."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from helpers import serve_app
from s3_fixtures import MotoS3, moto_s3

from pipeline.config import ColumnMap
from pipeline.fetch import (
    Fetched,
    Fetcher,
    FetchRejected,
    FetchSettings,
    SourceAccessError,
    SourceRef,
    SourceStamp,
    parse_source,
)
from pipeline.fetch.outcomes import UNSTAMPED
from pipeline.manifest import Manifest
from pipeline.manifest.row_keys import path_key
from pipeline.samples import make_jpeg


async def _no_wait(_: float) -> None:
    """Backoff without waiting: tests count retries, they do not time them."""


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    with moto_s3() as server:
        yield server


def _ref(url: str) -> SourceRef:
    ref = parse_source(url, base=None, root=None)
    assert isinstance(ref, SourceRef), ref
    return ref


async def test_a_misspelt_bucket_rejects_its_own_rows_while_the_good_bucket_goes_on(s3: MotoS3) -> None:
    s3.put("good/0.jpg", b"zero")
    async with Fetcher(FetchSettings(s3_endpoint=s3.endpoint, fetch_timeout=30), sleep=_no_wait) as fetcher:
        assert isinstance(await fetcher.fetch(_ref(f"s3://{s3.bucket}/good/0.jpg")), Fetched)
        answers = []
        for n in range(12):  # far past the threshold of 5, interleaved with good rows
            answers.append(await fetcher.fetch(_ref(f"s3://sorces/k{n}.jpg")))
            assert isinstance(await fetcher.fetch(_ref(f"s3://{s3.bucket}/good/0.jpg")), Fetched)
        assert all(isinstance(a, FetchRejected) and a.reason == "not_found" for a in answers)
        assert all("s3://sorces" in a.detail for a in answers if isinstance(a, FetchRejected))
        later = answers[-1]
        assert isinstance(later, FetchRejected) and "refused the first 5 requests" in later.detail
        assert fetcher.stats.requests == 1 + 12 + 5  # the closed bucket is asked no more


async def test_a_bucket_refusing_everything_stops_the_run_when_it_is_all_there_is(s3: MotoS3) -> None:
    async with Fetcher(FetchSettings(s3_endpoint=s3.endpoint, fetch_timeout=30), sleep=_no_wait) as fetcher:
        with pytest.raises(SourceAccessError, match="s3://only-bad"):
            for n in range(10):
                await fetcher.fetch(_ref(f"s3://only-bad/k{n}.jpg"))
    async with Fetcher(FetchSettings(s3_endpoint=s3.endpoint, fetch_timeout=30), sleep=_no_wait) as fetcher:
        fetcher.saw(None)  # the run also has local files: the bucket is one store's fault, not the run's
        for n in range(10):
            got = await fetcher.fetch(_ref(f"s3://only-bad/k{n}.jpg"))
            assert isinstance(got, FetchRejected) and got.reason == "not_found"


LEGAL_KEYS = ["dir//double.jpg", "./dot.jpg", "dot/../up.jpg", "tab\there.jpg", "tail/", "/lead.jpg",
              "del\x7f.jpg"]


async def test_legal_keys_obstore_cannot_read_are_refused_by_name_without_requests(s3: MotoS3) -> None:
    for key in LEGAL_KEYS:
        s3.put(key, b"the key " + key.encode())
    for decoy in ("tail", "lead.jpg", "up.jpg", "dot.jpg"):  # what a normalising client would read instead
        s3.put(decoy, b"decoy")
    async with Fetcher(FetchSettings(s3_endpoint=s3.endpoint, fetch_timeout=30), sleep=_no_wait) as fetcher:
        for key in LEGAL_KEYS:
            got = await fetcher.fetch(_ref(f"s3://{s3.bucket}/{key}"))
            if isinstance(got, Fetched):
                assert got.data == b"the key " + key.encode(), key  # the object named, never another
                continue
            assert got.reason == "unsupported_source", (key, got)
            assert "cannot be read by this client" in got.detail
            stat = await fetcher.stat(_ref(f"s3://{s3.bucket}/{key}"))
            assert isinstance(stat, FetchRejected) and stat.reason == "unsupported_source"
        assert fetcher.stats.retries == 0 and fetcher.stats.requests == 0


PHOTO = make_jpeg(None, 200, 160, seed=7, quality=80)


class Served:
    """A site serving one photo gzip-encoded, a gzip bomb, broken gzip and a photo with no stamp."""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/gz.jpg", self.gz)
        app.router.add_get("/deflate.jpg", self.deflate)
        app.router.add_get("/bomb.jpg", self.bomb)
        app.router.add_get("/broken.jpg", self.broken)
        app.router.add_route("*", "/bare.jpg", self.bare)
        return app

    async def gz(self, _: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(PHOTO), headers={"Content-Encoding": "gzip", "ETag": '"g"'})

    async def deflate(self, _: web.Request) -> web.Response:
        return web.Response(body=zlib.compress(PHOTO), headers={"Content-Encoding": "deflate"})

    async def bomb(self, _: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b"\0" * (64 << 20)), headers={"Content-Encoding": "gzip"})

    async def broken(self, _: web.Request) -> web.Response:
        return web.Response(body=b"this is not gzip at all", headers={"Content-Encoding": "gzip"})

    async def bare(self, _: web.Request) -> web.Response:
        return web.Response(body=PHOTO)  # neither ETag nor Last-Modified


@pytest.fixture
async def served() -> AsyncIterator[tuple[Served, str]]:
    state = Served()
    async with serve_app(state.app()) as url:
        yield state, url


async def test_gzip_and_deflate_bodies_are_decoded_and_a_bomb_is_refused(served: tuple[Served, str]) -> None:
    _, url = served
    settings = FetchSettings(source_max_bytes=8 << 20, fetch_max_bytes_in_flight=16 << 20)
    async with Fetcher(settings, sleep=_no_wait) as fetcher:
        for name in ("gz.jpg", "deflate.jpg"):
            got = await fetcher.fetch(_ref(f"{url}/{name}"))
            assert isinstance(got, Fetched) and got.data == PHOTO and got.size == len(PHOTO), name
        bomb = await fetcher.fetch(_ref(f"{url}/bomb.jpg"))  # 64 MB of zeros in ~64 kB: over the 8 MB limit
        assert isinstance(bomb, FetchRejected) and bomb.reason == "source_too_large"
        broken = await fetcher.fetch(_ref(f"{url}/broken.jpg"))
        assert isinstance(broken, FetchRejected) and broken.reason == "fetch_failed" and "gzip" in broken.detail
        assert fetcher.stats.retries == 0 and fetcher.budget.in_use == 0


async def test_a_web_source_without_stamp_is_compared_by_content(served: tuple[Served, str]) -> None:
    _, url = served
    async with Fetcher(FetchSettings(), sleep=_no_wait) as fetcher:
        got = await fetcher.fetch(_ref(f"{url}/bare.jpg"))
        assert isinstance(got, Fetched) and got.stamp.value is None  # what the journal keeps for it
        head = await fetcher.stat(_ref(f"{url}/bare.jpg"))
        # Never equal to a journaled stamp (None): a finished row is fetched again and its sha256 decides.
        assert head == SourceStamp(UNSTAMPED, len(PHOTO))


def test_a_presigned_url_keeps_its_row_key_when_signed_again(tmp_path: Path) -> None:
    signed = "https://h.example/photos/a.jpg?X-Amz-Signature=abc&X-Amz-Date=20260101"
    again = "https://h.example/photos/a.jpg?X-Amz-Signature=def&X-Amz-Date=20260102"
    assert path_key(signed, web_base=False) == path_key(again, web_base=False) == "https://h.example/photos/a.jpg"
    assert path_key("s3://b/odd?name.jpg", web_base=False) == "s3://b/odd?name.jpg"  # part of an S3 key
    assert path_key("local/odd?name.jpg", web_base=False) == "local/odd?name.jpg"  # part of a file's name
    assert path_key("a.jpg?sig=1", web_base=True) == "a.jpg"  # joins a web manifest's folder
    keys = []
    for night, url in enumerate((signed, again)):
        manifest = tmp_path / f"night{night}.csv"
        manifest.write_text(f"path\n{url}\nhttps://h.example/photos/b.jpg\n")
        rows = [row for batch in Manifest.open(manifest, ColumnMap(id=None)).row_batches() for row in batch.rows]
        keys.append([row.key for row in rows])
        assert rows[0].remote is not None and rows[0].remote.url == url  # still fetched with its signature
    assert keys[0] == keys[1] == ["https://h.example/photos/a.jpg", "https://h.example/photos/b.jpg"]


async def test_a_gcs_key_obstore_cannot_read_is_refused_before_any_request() -> None:
    async with Fetcher(FetchSettings(), sleep=_no_wait) as fetcher:
        got = await fetcher.fetch(_ref("gs://bkt/a//b.jpg"))
        assert got == FetchRejected("unsupported_source",
                                    "gs://bkt/a//b.jpg: GCS key with '//' cannot be read by this client")
        assert fetcher.stats.requests == 0
