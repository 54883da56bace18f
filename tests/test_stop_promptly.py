"""Stop promptly: after the first signal, every wait of a row that holds no key ends at once (a presign the
endpoint never answers, a 429 pause, a slow source), and a row holding a key is waited for at most
``stop_grace`` seconds, then left presigned for the next run. Client-level tests without signals, and runs in
this process whose ``RunControl`` gets its signal from the test (the real signals: reliability/test_signals).

Each wait here would last 60 s or more without the stop; ``asyncio.wait_for`` bounds the test, not a timing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from aiohttp import web
from helpers import MakeEmulator, make_image, photo_manifest, serve_app

from pipeline import runner
from pipeline.client import ApiClient, ApiSettings, RowInterrupted
from pipeline.config import Credentials
from pipeline.emulator import Emulator, EmulatorConfig, Faults
from pipeline.errors import ConfigError
from pipeline.models import ExitCode, Presigned
from pipeline.python_api import make_settings
from pipeline.runner.control import RunControl
from pipeline.samples import make_jpeg

JPEG = make_image(300, 300)
BOUND = 15.0
"""Seconds a stopped wait may take in these tests before it counts as not stopped (each would last 60+)."""


def settings_for(emu: Emulator, **overrides: Any) -> ApiSettings:
    base = ApiSettings(workspace=emu.workspace, credentials=emu.credentials, endpoint=emu.base_url,
                       backoff_base=0.01, backoff_max=0.05, retry_window=1000.0, outage_budget=1000.0,
                       read_timeout=120.0, put_timeout_floor=300.0)
    return dataclasses.replace(base, **overrides)


async def until_true(predicate: Callable[[], bool]) -> None:
    while not predicate():  # noqa: ASYNC110 - the emulator's counters have no event to wait on
        await asyncio.sleep(0.005)


def test_stop_grace_is_a_setting_with_a_readable_refusal() -> None:
    settings = ApiSettings(workspace="w", credentials=Credentials("a", "bcde"))
    assert settings.stop_grace == 20.0
    with pytest.raises(ConfigError, match="--stop-grace"):
        dataclasses.replace(settings, stop_grace=-1.0)


async def test_interrupt_callbacks_run_once_at_the_first_signal() -> None:
    control = RunControl()
    calls: list[str] = []
    control.on_interrupt(lambda: calls.append("a"))
    forget = control.on_interrupt(lambda: calls.append("b"))
    forget()  # a stage that ended takes its callback back
    assert calls == []
    control.on_signal()
    assert calls == ["a"] and control.stopping.is_set() and control.interrupted
    control.on_interrupt(lambda: calls.append("late"))  # registered after the signal: called at once
    assert calls == ["a", "late"]


async def test_a_presign_waiting_out_a_429_pause_ends_at_the_stop(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(EmulatorConfig(rate=0, confirm_rate=0, faults=Faults(retry_after="60")))
    emu.faults.storm(600)  # every presign answered 429 with Retry-After: 60
    journaled: list[Presigned] = []

    async def on_presigned(p: Presigned) -> None:
        journaled.append(p)

    async with ApiClient(settings_for(emu, max_retry_after=60.0)) as client:
        row = asyncio.create_task(client.upload("a.jpg", JPEG, "image/jpeg", on_presigned=on_presigned))
        await asyncio.wait_for(until_true(lambda: emu.counters.responses_429 >= 1), BOUND)
        await asyncio.sleep(0.05)  # the row now waits at the paused limiter
        client.halt()
        with pytest.raises(RowInterrupted):
            await asyncio.wait_for(row, BOUND)
    assert journaled == [] and emu.counters.presign_calls == 1  # no key taken, no second try


async def test_a_presign_the_endpoint_never_answers_ends_at_the_stop(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(EmulatorConfig(rate=0, confirm_rate=0))
    async with ApiClient(settings_for(emu)) as client:
        await client.preflight()  # the endpoint answers; from now on its presign calls never are
        emu.faults.stall_rate = 1.0
        row = asyncio.create_task(client.upload("a.jpg", JPEG, "image/jpeg"))
        await asyncio.wait_for(until_true(lambda: emu.counters.faults["stalled"] >= 1), BOUND)
        client.halt()
        with pytest.raises(RowInterrupted):
            await asyncio.wait_for(row, BOUND)
        with pytest.raises(RowInterrupted):  # a row that starts after the stop takes no key either
            await client.upload("b.jpg", JPEG, "image/jpeg")
    assert emu.counters.presign_calls == 1 and emu.objects == {}


async def test_a_row_holding_a_key_finishes_within_the_grace(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(EmulatorConfig(rate=0, confirm_rate=0, faults=Faults(latency=0.2)))
    async with ApiClient(settings_for(emu, stop_grace=60.0)) as client:

        async def on_presigned(_p: Presigned) -> None:
            client.halt()  # the run stops just after the key is journaled: this row holds a key

        outcome = await asyncio.wait_for(
            client.upload("a.jpg", JPEG, "image/jpeg", on_presigned=on_presigned), BOUND)
    assert outcome.ok and outcome.attempts == 1
    assert list(emu.objects) == [outcome.thumbnail_key] and emu.counters.status_calls == 1


async def test_a_row_holding_a_key_is_left_presigned_after_the_grace(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(EmulatorConfig(rate=0, confirm_rate=0))
    journaled: list[str] = []
    async with ApiClient(settings_for(emu, stop_grace=0.2)) as client:

        async def on_presigned(p: Presigned) -> None:
            journaled.append(p.thumbnail_key)
            emu.faults.stall_rate = 1.0  # its PUT is accepted and never answered
            client.halt()

        with pytest.raises(RowInterrupted):
            await asyncio.wait_for(client.upload("a.jpg", JPEG, "image/jpeg", on_presigned=on_presigned), BOUND)
    assert len(journaled) == 1 and emu.counters.put_calls == 1 and emu.objects == {}


@pytest.fixture
async def slow_photo() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """One photo served at one byte per 0.2 s (a minute and more for the whole), and an event set once its
    body has begun."""
    data = make_jpeg(None, 300, 300, seed=3, quality=70)
    begun = asyncio.Event()

    async def photo(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg", "Content-Length": str(len(data))})
        await response.prepare(request)
        for i in range(len(data)):
            await response.write(data[i:i + 1])
            begun.set()
            await asyncio.sleep(0.2)
        return response

    app = web.Application()
    app.router.add_get("/slow.jpg", photo)
    async with serve_app(app) as url:
        yield f"{url}/slow.jpg", begun


def _run_settings(emu: Emulator, tmp_path: Path, **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "workspace": emu.workspace, "endpoint": emu.base_url, "credentials": emu.credentials,
        "out": tmp_path / "results.parquet", "journal": tmp_path / "journal.sqlite", "progress": False,
        "rate": 0.0, "confirm_rate": 0.0, "backoff_max": 0.05, "retry_window": 1000.0, "read_timeout": 120.0,
        **overrides,
    }
    return make_settings(**options)


async def _interrupted_run(settings: Any, manifest: Path, ready: Callable[[], Any]) -> Any:
    """Run ``manifest``; once ``ready()`` (awaited) returns, give the run its first signal."""
    controls: list[RunControl] = []
    run = asyncio.create_task(runner.run_async(settings, manifest, on_control=controls.append))
    await asyncio.wait_for(ready(), BOUND)
    controls[0].on_signal()
    return await asyncio.wait_for(run, BOUND)


async def test_a_run_fetching_a_slow_source_ends_at_the_first_signal(
    slow_photo: tuple[str, asyncio.Event], make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator(EmulatorConfig(rate=0, confirm_rate=0))
    url, begun = slow_photo
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"id,path\nslow,{url}\n")
    summary = await _interrupted_run(_run_settings(emu, tmp_path, fetch_timeout=600.0), manifest, begun.wait)
    assert summary.exit_code == ExitCode.INTERRUPTED
    rows = pq.read_table(tmp_path / "results.parquet").to_pylist()
    assert [(r["id"], r["reason"]) for r in rows] == [("slow", "interrupted")]
    assert emu.counters.presign_calls == 0


@pytest.mark.parametrize("fault", ["stall", "429"])
async def test_a_run_whose_presigns_wait_ends_at_the_first_signal(
    fault: str, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    # Set before the run, and neither reaches the preflight (a GET): every presign is held for ever in front of
    # the gateway (stall), or answered 429 with Retry-After 60.
    faults = (Faults(queue_rate=1.0, queue_delay=600.0) if fault == "stall"
              else Faults(retry_after="60", storm_until=float("inf")))
    emu = await make_emulator(EmulatorConfig(rate=0, confirm_rate=0, faults=faults))
    manifest = photo_manifest(tmp_path / "photos", 6, manifest=tmp_path / "m.csv", height=300)

    async def waiting() -> None:
        await until_true(lambda: emu.counters.presign_calls >= 1)
        await asyncio.sleep(0.05)

    settings = _run_settings(emu, tmp_path, concurrency=2, max_retry_after=60.0)
    summary = await _interrupted_run(settings, manifest, waiting)
    assert summary.exit_code == ExitCode.INTERRUPTED
    rows = pq.read_table(tmp_path / "results.parquet").to_pylist()
    assert len(rows) == 6 and {r["reason"] for r in rows} == {"interrupted"}
    assert emu.objects == {} and emu.counters.put_calls == 0


async def test_a_re_run_whose_stamp_heads_hang_ends_at_the_first_signal(make_emulator: MakeEmulator,
                                                                        tmp_path: Path) -> None:
    """A finished web row is stamped with a HEAD on the next run; a HEAD that never answers ends at the first
    signal (the row keeps its key), not after ``--fetch-timeout``."""
    data = make_jpeg(None, 300, 300, seed=4, quality=70)
    head_begun, release = asyncio.Event(), asyncio.Event()

    async def photo(request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            head_begun.set()
            await release.wait()  # the run's HEAD waits until the test is over
        return web.Response(body=data, content_type="image/jpeg", headers={"ETag": '"v1"'})

    app = web.Application()
    app.router.add_route("*", "/p.jpg", photo)
    emu = await make_emulator(EmulatorConfig(rate=0, confirm_rate=0))
    async with serve_app(app) as url:
        manifest = tmp_path / "m.csv"
        manifest.write_text(f"id,path\nweb,{url}/p.jpg\n")
        settings = _run_settings(emu, tmp_path, fetch_timeout=600.0)
        first = await runner.run_async(settings, manifest)
        assert first.by_status == {"uploaded": 1}
        again = await _interrupted_run(settings, manifest, head_begun.wait)
        release.set()
    assert again.exit_code == ExitCode.INTERRUPTED
    rows = pq.read_table(tmp_path / "results.parquet").to_pylist()
    assert [(r["id"], r["status"]) for r in rows] == [("web", "uploaded")]
    assert emu.counters.presign_calls == 1


@pytest.mark.slow  # ~8 s: the persons calls are paced at 0.5/s so that the signal finds some waiting
async def test_attaching_after_the_first_signal_ends_within_the_grace_and_a_re_run_attaches_once(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    """Keys uploaded before the signal are still attached after it, but a persons API that answers only 503
    is waited for ``--stop-grace`` seconds, not ``--retry-window``: the keys stay uploaded (and any call under
    way stays an intent), and the next run attaches each one once."""
    emu = await make_emulator(EmulatorConfig(rate=0, confirm_rate=0, persons_rate=0))
    folder = tmp_path / "photos"
    folder.mkdir()
    lines = ["id,path,person"]
    for i, who in enumerate("ABCD"):
        make_jpeg(folder / f"p{i}.jpg", 300, 300, seed=40 + i, quality=70)
        lines.append(f"k{i},photos/p{i}.jpg,{who}")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(lines) + "\n")
    # One persons call every 2 s: the signal comes while the other persons wait their turn. Retried for 1000 s
    # without the stop (--retry-window, --outage-budget): only the grace can end the run within BOUND.
    settings = _run_settings(emu, tmp_path, attach=True, attach_rate=0.5, stop_grace=1.0, outage_budget=1000.0)

    async def uploaded_then_failing() -> None:
        await until_true(lambda: emu.counters.person_create_calls >= 1)
        emu.faults.error_rate = 1.0  # every call from now on: 503

    first = await _interrupted_run(settings, manifest, uploaded_then_failing)
    assert first.exit_code == ExitCode.INTERRUPTED
    assert first.by_status.get("attached", 0) < 4 and len(emu.persons) < 4  # some keys were left unattached
    emu.faults.error_rate = 0.0
    unpaced = _run_settings(emu, tmp_path, attach=True, attach_rate=0.0)
    again = await runner.run_async(unpaced, manifest)
    assert again.exit_code == ExitCode.OK and again.by_status == {"attached": 4}
    assert len(emu.objects) == 4 and set(emu.counters.puts_per_key.values()) == {1}  # never uploaded twice
    assert sorted((p.name, len(p.thumbnails)) for p in emu.persons.values()) == [
        ("A", 1), ("B", 1), ("C", 1), ("D", 1)]  # each attached once: no duplicate thumbnail


@pytest.mark.parametrize("dry_run", [False, True])
async def test_persons_look_ups_before_the_uploads_end_at_the_first_signal(
    dry_run: bool, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    """The persons' look-ups (a real run's before any upload, a dry run's after its stages) hold no key: a
    persons API answering only 503 is left at the first signal, not retried for ``--retry-window``."""
    emu = await make_emulator(EmulatorConfig(rate=0, confirm_rate=0, persons_rate=0))
    manifest = tmp_path / "m.csv"
    make_jpeg(tmp_path / "p.jpg", 300, 300, seed=5, quality=70)
    manifest.write_text("id,path,person\nk0,p.jpg,Alice\n")
    settings = _run_settings(emu, tmp_path, attach=True, attach_rate=0.0, outage_budget=1000.0, dry_run=dry_run)
    emu.faults.error_rate = 1.0  # every API call: 503 (the preflight's GET is no API call)

    async def looking_up() -> None:
        await until_true(lambda: emu.counters.person_list_calls + emu.counters.person_get_calls >= 1)

    summary = await _interrupted_run(settings, manifest, looking_up)
    assert summary.exit_code == ExitCode.INTERRUPTED
    assert emu.counters.presign_calls == 0 and emu.objects == {}
