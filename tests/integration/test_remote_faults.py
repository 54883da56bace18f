"""Per-row faults of remote sources stay per-row through whole runs (issue "Hardening, third pass"): a misspelt
bucket among good rows, a web photo with no stamp that changes, presigned URLs signed anew, a gzip-encoded
JPEG, and a manifest from the web naming local files."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from aiohttp import web
from helpers import MakeEmulator, serve_app
from s3_fixtures import MotoS3, moto_s3

from pipeline import runner
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.python_api import make_settings
from pipeline.samples import make_jpeg

FAST = {"rate": 0.0, "confirm_rate": 0.0, "confirm": False, "progress": False}


@pytest.fixture
def s3() -> MotoS3:
    with moto_s3() as server:
        yield server  # type: ignore[misc]


def _settings(emu: Emulator, tmp_path: Path, **extra: Any) -> Any:
    return make_settings(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
                         out=tmp_path / "r.parquet", journal=tmp_path / "j.sqlite", **FAST, **extra)


def _puts(emu: Emulator) -> int:
    return int(emu.counters.snapshot(arrivals=False)["put_calls"])


async def test_a_misspelt_bucket_rejects_its_rows_and_the_run_goes_on(
    s3: MotoS3, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator(EmulatorConfig(storage="hash", rate=0, confirm_rate=0))
    for i in range(23):
        s3.put(f"p/{i}.jpg", make_jpeg(None, 300, 280 + i, seed=i, quality=70))
    bad = [f"s3://{s3.bucket}-typo/p/{i}.jpg" for i in range(5)]
    good = [f"s3://{s3.bucket}/p/{i}.jpg" for i in range(20)]
    manifest = tmp_path / "m.csv"
    manifest.write_text("path\n" + "\n".join(bad + good) + "\n")
    # One fetch at a time, the misspelt bucket first: it is refused 5 times before the good bucket is asked,
    # and still judged by its own rows (the run's stores are known from the rows read, before any request).
    settings = _settings(emu, tmp_path, s3_endpoint=s3.endpoint, fetch_concurrency=1)

    first = await runner.run_async(settings, manifest)
    assert first.exit_code == 0 and first.by_status == {"uploaded": 20, "rejected": 5}
    rows = pq.read_table(first.results_path).to_pylist()
    rejected = [r for r in rows if r["status"] == "rejected"]
    assert {r["reason"] for r in rejected} == {"not_found"}
    assert all(f"s3://{s3.bucket}-typo" in r["detail"] for r in rejected)

    # Next night: the rejections are re-checked first (they come first), new rows after them still upload.
    for i in range(20, 23):
        good.append(f"s3://{s3.bucket}/p/{i}.jpg")
    manifest.write_text("path\n" + "\n".join(bad + good) + "\n")
    emu.reset_counters()
    second = await runner.run_async(settings, manifest)
    assert second.exit_code == 0 and _puts(emu) == 3
    assert second.by_status == {"uploaded": 23, "rejected": 5}


class Site:
    """A photo with neither ETag nor Last-Modified (``bare``, replaceable), one that ignores its presigned query
    (``signed``, with an ETag), and one served gzip-encoded; GETs counted per path."""

    def __init__(self) -> None:
        self.bare = make_jpeg(None, 300, 280, seed=1, quality=70)
        self.signed = make_jpeg(None, 300, 281, seed=2, quality=70)
        self.zipped = make_jpeg(None, 300, 282, seed=3, quality=70)
        self.gets: dict[str, int] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/bare.jpg", self.serve_bare)
        app.router.add_route("*", "/signed.jpg", self.serve_signed)
        app.router.add_route("*", "/zipped.jpg", self.serve_zipped)
        return app

    def _count(self, request: web.Request) -> None:
        if request.method == "GET":
            self.gets[request.path] = self.gets.get(request.path, 0) + 1

    async def serve_bare(self, request: web.Request) -> web.Response:
        self._count(request)
        return web.Response(body=self.bare, content_type="image/jpeg")

    async def serve_signed(self, request: web.Request) -> web.Response:
        self._count(request)
        return web.Response(body=self.signed, content_type="image/jpeg", headers={"ETag": '"s1"'})

    async def serve_zipped(self, request: web.Request) -> web.Response:
        self._count(request)
        return web.Response(body=gzip.compress(self.zipped), content_type="image/jpeg",
                            headers={"Content-Encoding": "gzip", "ETag": '"z1"'})


@pytest.fixture
async def site() -> AsyncIterator[tuple[Site, str]]:
    state = Site()
    async with serve_app(state.app()) as url:
        yield state, url


async def test_web_sources_without_stamp_signed_anew_or_gzipped(
    site: tuple[Site, str], make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    state, url = site
    emu = await make_emulator(EmulatorConfig(storage="memory", rate=0, confirm_rate=0))
    manifest = tmp_path / "m.csv"

    def night(signature: str) -> None:
        manifest.write_text(f"path\n{url}/bare.jpg\n{url}/signed.jpg?X-Amz-Signature={signature}\n"
                            f"{url}/zipped.jpg\n")

    night("aaa")
    settings = _settings(emu, tmp_path)
    first = await runner.run_async(settings, manifest)
    assert first.exit_code == 0 and first.by_status == {"uploaded": 3}
    rows = pq.read_table(first.results_path).to_pylist()
    assert emu.objects[rows[2]["thumbnail_key"]].read() == state.zipped  # decoded, not unsupported_format

    night("bbb")  # re-signed: same rows, same keys; the unstamped photo is fetched and hashed, not uploaded
    emu.reset_counters()
    second = await runner.run_async(settings, manifest)
    assert second.exit_code == 0 and _puts(emu) == 0
    assert state.gets["/bare.jpg"] == 2 and state.gets["/signed.jpg"] == 1

    state.bare = make_jpeg(None, 310, 280, seed=9, quality=70)  # it changes, with nothing to say so but its bytes
    third = await runner.run_async(settings, manifest)
    assert third.exit_code == 0 and _puts(emu) == 1
    after = pq.read_table(third.results_path).to_pylist()
    assert after[0]["thumbnail_key"] != rows[0]["thumbnail_key"]
    assert [a["thumbnail_key"] for a in after[1:]] == [r["thumbnail_key"] for r in rows[1:]]


async def test_a_manifest_from_the_web_never_uploads_local_files(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(make_jpeg(None, 300, 290, seed=5, quality=70))
    photo = make_jpeg(None, 300, 291, seed=6, quality=70)
    listing = f"path\nphotos/ok.jpg\n{secret}\nfile://{secret}\n../photos/ok.jpg\n"

    async def serve(request: web.Request) -> web.Response:
        if request.path == "/m/list.csv":
            return web.Response(text=listing)
        if request.path == "/photos/ok.jpg" or request.path == "/m/photos/ok.jpg":
            return web.Response(body=photo)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    emu = await make_emulator(EmulatorConfig(storage="memory", rate=0, confirm_rate=0))
    async with serve_app(app) as url:
        summary = await runner.run_async(_settings(emu, tmp_path), f"{url}/m/list.csv")
    rows = pq.read_table(summary.results_path).to_pylist()
    assert [r["status"] for r in rows] == ["uploaded", "rejected", "rejected", "uploaded"]
    assert [r["reason"] for r in rows[1:3]] == ["outside_root", "outside_root"]
    assert all("local file" in r["detail"] for r in rows[1:3])
    assert _puts(emu) == 2
