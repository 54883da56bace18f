"""``--root`` as an ``s3://`` or ``http://`` prefix (issue 14): relative cells join it, nothing leaves it, and a
malformed one stops the run before any call. Against moto's S3 server, a loopback HTTP server and the emulator."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from aiohttp import web
from helpers import MakeEmulator, serve_app
from s3_fixtures import MotoS3, moto_s3

from pipeline.cli import main
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.errors import ManifestError
from pipeline.python_api import ingest_async
from pipeline.samples import make_jpeg

FAST = {"rate": 0.0, "confirm_rate": 0.0, "confirm": False, "progress": False}
PHOTOS = {name: make_jpeg(None, 300 + i, 290, seed=i, quality=70) for i, name in enumerate(["a.jpg", "sub/b.jpg"])}
SECRET = make_jpeg(None, 320, 320, seed=77, quality=70)


@pytest.fixture
def s3() -> Iterator[MotoS3]:
    with moto_s3() as server:
        for name, data in PHOTOS.items():
            server.put(f"archive/2024/{name}", data)
        server.put("archive/secret.jpg", SECRET)  # beside the root, never inside it
        yield server


class Site:
    """A loopback web server with the photos under ``/photos/`` and a secret beside them; counts requests."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.url = ""

    async def serve(self, request: web.Request) -> web.Response:
        self.seen.append(request.path)
        if request.path == "/secret.jpg":
            return web.Response(body=SECRET)
        data = PHOTOS.get(request.path.removeprefix("/photos/"))
        return web.Response(body=data) if data is not None else web.Response(status=404)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    state = Site()
    app = web.Application()
    app.router.add_get("/{tail:.*}", state.serve)
    async with serve_app(app) as state.url:
        yield state


def _manifest(tmp_path: Path, cells: list[str]) -> Path:
    path = tmp_path / "m.csv"
    path.write_text("id,path\n" + "".join(f"r{i},{cell}\n" for i, cell in enumerate(cells)))
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("emulator_thread", [EmulatorConfig(storage="memory", rate=0, confirm_rate=0)],
                         indirect=True)
def test_relative_cells_join_an_s3_root_from_the_cli(
    s3: MotoS3, emulator_thread: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_thread
    monkeypatch.setenv("NCLOUD_ACCESS_KEY", emu.credentials.access_key)
    monkeypatch.setenv("NCLOUD_SECRET_KEY", emu.credentials.secret_key)
    cells = ["a.jpg", "sub/b.jpg", "../secret.jpg", "sub/../../secret.jpg", f"s3://{s3.bucket}/archive/secret.jpg",
             str(tmp_path / "m.csv"), "missing.jpg"]
    out = tmp_path / "r.parquet"
    argv = ["ingest", str(_manifest(tmp_path, cells)), "--workspace", emu.workspace, "--endpoint", emu.base_url,
            "--root", f"s3://{s3.bucket}/archive/2024", "--s3-endpoint", s3.endpoint, "--out", str(out),
            "--no-progress", "--rate", "0", "--confirm-rate", "0", "--no-confirm", "--report", str(tmp_path / "r.html")]
    assert main(argv) == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")  # photos under the root are not fetched for it
    assert "remote source, not fetched" in page and "data:image/jpeg" not in page
    rows = pq.read_table(out).to_pylist()
    assert [r["status"] for r in rows] == ["uploaded"] * 2 + ["rejected"] * 5
    assert [r["reason"] for r in rows[2:]] == ["outside_root"] * 4 + ["not_found"]
    for row, data in zip(rows[:2], PHOTOS.values(), strict=True):
        assert emu.objects[row["thumbnail_key"]].read() == data and row["source_sha256"] == _sha(data)
    assert f"--root s3://{s3.bucket}/archive/2024/" in rows[2]["detail"]


async def test_relative_cells_join_an_http_root_through_the_python_api(
    site: Site, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator(EmulatorConfig(storage="memory", rate=0, confirm_rate=0))
    cells = ["a.jpg", "sub/b.jpg", "../secret.jpg", "sub/../../secret.jpg", f"{site.url}/secret.jpg"]
    summary = await ingest_async(_manifest(tmp_path, cells), workspace=emu.workspace, endpoint=emu.base_url,
                                 credentials=emu.credentials, root=f"{site.url}/photos", **FAST)
    assert summary.results is not None and summary.exit_code == 0
    rows = summary.results.to_pylist()
    assert [r["reason"] for r in rows] == [None, None] + ["outside_root"] * 3
    for row, data in zip(rows[:2], PHOTOS.values(), strict=True):
        assert emu.objects[row["thumbnail_key"]].read() == data and row["source_sha256"] == _sha(data)
    assert sorted(site.seen) == ["/photos/a.jpg", "/photos/sub/b.jpg"]  # the secret was never asked for


async def test_a_dry_run_with_a_remote_root_through_the_python_api_fetches_and_prepares_only(
    s3: MotoS3, tmp_path: Path
) -> None:
    manifest = _manifest(tmp_path, ["a.jpg", "sub/b.jpg", "../secret.jpg", "nope.jpg"])
    summary = await ingest_async(manifest, workspace="w", endpoint="http://127.0.0.1:9", dry_run=True,
                                 s3_endpoint=s3.endpoint, root=f"s3://{s3.bucket}/archive/2024/", progress=False)
    assert summary.results_path == tmp_path / "m.dryrun.parquet" and summary.exit_code == 0
    rows = pq.read_table(summary.results_path).to_pylist()
    assert [(r["status"], r["reason"]) for r in rows] == [("skipped", None), ("skipped", None),
                                                          ("rejected", "outside_root"), ("rejected", "not_found")]
    assert [r["source_sha256"] for r in rows[:2]] == [_sha(d) for d in PHOTOS.values()]


async def test_when_nothing_exists_under_a_remote_root_the_stop_names_it(
    s3: MotoS3, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator(EmulatorConfig(storage="hash", rate=0, confirm_rate=0))
    with pytest.raises(ManifestError) as info:
        await ingest_async(_manifest(tmp_path, ["a.jpg", "sub/b.jpg"]), workspace=emu.workspace,
                           endpoint=emu.base_url, credentials=emu.credentials, s3_endpoint=s3.endpoint,
                           root=f"s3://{s3.bucket}/archive/2025", **FAST)
    # The Python API names the keyword and the value as given, never the flag.
    assert f"resolved against root='s3://{s3.bucket}/archive/2025';" in str(info.value)
    assert "\n" not in str(info.value)
    assert emu.counters.snapshot(arrivals=False)["put_calls"] == 0


@pytest.mark.parametrize("root", ["s3://", "gs:///photos", "ftp://host/photos", "https://user:pw@host/p",
                                  "https://host/p?X-Amz-Signature=abc", "file://elsewhere/photos"])
def test_a_malformed_remote_root_stops_before_any_call_with_one_sentence(
    root: str, emulator_thread: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NCLOUD_ACCESS_KEY", emulator_thread.credentials.access_key)
    monkeypatch.setenv("NCLOUD_SECRET_KEY", emulator_thread.credentials.secret_key)
    manifest = _manifest(tmp_path, ["a.jpg"])
    code = main(["ingest", str(manifest), "--workspace", emulator_thread.workspace, "--endpoint",
                 emulator_thread.base_url, "--root", root, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--root" in err and "Traceback" not in err
    assert "pw" not in err and "abc" not in err
    assert emulator_thread.counters.snapshot(arrivals=False)["presign_calls"] == 0
    assert not list(tmp_path.glob("m.*.parquet")) and not list(tmp_path.glob("*.sqlite"))
