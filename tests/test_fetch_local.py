"""Local sources (the image stage's reasons), the byte budget, the settings' checks, and a manifest
downloaded from S3 or HTTP to a temporary file."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from helpers import serve_app
from s3_fixtures import MotoS3, moto_s3

from pipeline.errors import ConfigError, ManifestError
from pipeline.fetch import (
    ByteBudget,
    Fetcher,
    FetchSettings,
    SourceRef,
    open_remote_manifest,
    parse_source,
)


async def test_local_files_are_read_in_one_place_with_one_set_of_reasons(tmp_path: Path) -> None:
    """A local file is read by the image stage alone (``images.prepare`` on its path): missing, a path through
    a file, too large, a folder, a FIFO (never opened: it could block), unreadable; the fetcher refuses to
    read one (it fetches remote sources only)."""
    from pipeline.images import prepare
    from pipeline.models import ImagePolicy, Rejected

    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8 jpeg-ish bytes")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "big.jpg").write_bytes(b"x" * 2000)
    (tmp_path / "folder.jpg").mkdir()
    os.mkfifo(tmp_path / "fifo.jpg")
    locked = tmp_path / "locked.jpg"
    locked.write_bytes(b"x")
    locked.chmod(0)
    names = ["missing.jpg", "a.jpg/inside", "big.jpg", "folder.jpg", "fifo.jpg", "empty.jpg"]
    if os.geteuid() != 0:  # root reads a mode-000 file
        names.append("locked.jpg")
    policy = ImagePolicy(max_input_bytes=1000)
    reasons = {}
    for name in names:
        out = await asyncio.wait_for(asyncio.to_thread(prepare, tmp_path / name, policy), 10)
        assert isinstance(out, Rejected)
        reasons[name] = out.reason
    assert reasons == {"missing.jpg": "not_found", "a.jpg/inside": "not_found", "big.jpg": "too_large",
                       "folder.jpg": "unreadable", "fifo.jpg": "unreadable", "empty.jpg": "empty_file"} | (
                           {"locked.jpg": "unreadable"} if "locked.jpg" in names else {})
    ref = parse_source(str(tmp_path / "a.jpg"), base=None, root=None)
    assert isinstance(ref, SourceRef) and ref.is_local
    async with Fetcher(FetchSettings()) as fetcher:
        with pytest.raises(ValueError, match="local file"):
            await fetcher.fetch(ref)


async def test_the_byte_budget_is_fifo_and_clips_what_exceeds_it() -> None:
    budget = ByteBudget(100)
    order: list[str] = []
    big_may_finish = asyncio.Event()

    async def hold(name: str, nbytes: int, until: asyncio.Event | None = None) -> None:
        async with budget.reserve(nbytes):
            order.append(name)
            if until is not None:
                await until.wait()

    first = asyncio.create_task(hold("first-60", 60, big_may_finish))
    await asyncio.sleep(0)  # let it take its 60 bytes
    waiting = [asyncio.create_task(hold("huge-500", 500)), asyncio.create_task(hold("small-10", 10))]
    await asyncio.sleep(0)
    assert order == ["first-60"] and budget.in_use == 60  # small-10 would fit, but waits its turn behind huge
    big_may_finish.set()
    await asyncio.gather(first, *waiting)
    assert order == ["first-60", "huge-500", "small-10"]
    assert budget.peak == 100 and budget.in_use == 0


async def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    budget = ByteBudget(10)
    gate = asyncio.Event()

    async def hold(nbytes: int) -> None:
        async with budget.reserve(nbytes):
            await gate.wait()

    holder = asyncio.create_task(hold(10))
    await asyncio.sleep(0)
    stuck = asyncio.create_task(hold(10))
    await asyncio.sleep(0)
    stuck.cancel()
    gate.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await stuck
    assert budget.in_use == 0
    async with budget.reserve(10):
        assert budget.in_use == 10


@pytest.mark.parametrize("bad", [{"fetch_concurrency": 0}, {"source_max_bytes": 0}, {"fetch_timeout": 0},
                                 {"fetch_timeout": float("nan")}, {"fetch_retries": -1},
                                 {"s3_endpoint": "kr.object.ncloudstorage.com"}])
def test_settings_refuse_values_that_cannot_work(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        FetchSettings(**bad)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    with moto_s3() as server:
        yield server


def test_a_manifest_on_s3_downloads_to_a_file_with_its_extension(s3: MotoS3) -> None:
    body = b"path,id\n" + b"".join(b"s3://sources/p%d.jpg,%d\n" % (n, n) for n in range(50_000))
    s3.put("manifests/run.csv.gz", body)  # the name decides the suffix; the reader decides the rest
    path = open_remote_manifest(f"s3://{s3.bucket}/manifests/run.csv.gz", FetchSettings(s3_endpoint=s3.endpoint))
    try:
        assert path.name.endswith(".csv.gz") and path.read_bytes() == body
    finally:
        path.unlink()
    with pytest.raises(ManifestError, match=r"s3://sources/manifests/none.csv cannot be downloaded.*404"):
        open_remote_manifest(f"s3://{s3.bucket}/manifests/none.csv", FetchSettings(s3_endpoint=s3.endpoint))
    with pytest.raises(ManifestError, match=r"1.5 MB; the limit is 1000 bytes"):
        open_remote_manifest(f"s3://{s3.bucket}/manifests/run.csv.gz", FetchSettings(s3_endpoint=s3.endpoint),
                             max_bytes=1000)


@pytest.fixture
async def web_manifest() -> AsyncIterator[str]:
    async def serve(_: web.Request) -> web.Response:
        return web.Response(body=b"path\nhttps://example.invalid/a.jpg\n")

    app = web.Application()
    app.router.add_get("/m.csv", serve)
    async with serve_app(app) as url:
        yield f"{url}/m.csv?token=s3cr3t"


async def test_a_manifest_over_http_downloads_even_from_inside_an_event_loop(web_manifest: str) -> None:
    path = await asyncio.to_thread(open_remote_manifest, web_manifest)  # the server runs on this loop
    try:
        assert path.suffix == ".csv" and path.read_bytes() == b"path\nhttps://example.invalid/a.jpg\n"
    finally:
        path.unlink()
    with pytest.raises(ManifestError) as err:
        await asyncio.to_thread(open_remote_manifest, web_manifest.replace("/m.csv", "/gone.csv"))
    assert "404" in str(err.value) and "s3cr3t" not in str(err.value)
