"""The emulator's faults, its inspection route, and the ways of running it (thread, subprocess, flags)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
import xml.etree.ElementTree as ET

import aiohttp
import pytest
from emulator_tools import FakeClock
from helpers import MakeEmulator, make_image, presign, put, upload_status

from pipeline.config import Credentials
from pipeline.emulator import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    Emulator,
    EmulatorConfig,
    Faults,
    add_emulator_arguments,
    config_from_args,
    emulator_in_thread,
    run_emulator,
)
from pipeline.emulator.runtime import banner
from pipeline.errors import ConfigError
from pipeline.signing import signed_headers


async def test_error_rate_one_answers_5xx_everywhere(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    _, url = (lambda r: (r.body["result"]["thumbnailKey"], r.body["result"]["url"]))(await presign(http, emulator))
    emulator.faults.error_rate = 1.0
    api = [await presign(http, emulator) for _ in range(10)]
    assert {r.status for r in api} <= {500, 503} and {r.body["code"] for r in api} == {"500"}
    puts = [await put(http, url, make_image()) for _ in range(10)]
    codes = {(r.status, ET.fromstring(r.text).findtext("Code")) for r in puts}
    assert codes <= {(503, "SlowDown"), (500, "InternalError")}
    assert emulator.counters.faults["errors"] == 20
    # An injected error happens before the URL is looked at, so it is not spent.
    emulator.faults.error_rate = 0.0
    assert (await put(http, url, make_image())).status == 200


async def _statuses(emu: Emulator, n: int) -> list[int]:
    async with aiohttp.ClientSession() as http:
        return [(await presign(http, emu)).status for _ in range(n)]


async def test_seeded_faults_are_reproducible(make_emulator: MakeEmulator) -> None:
    config = EmulatorConfig(rate=0)
    first, second = await make_emulator(config), await make_emulator(EmulatorConfig(rate=0))
    first.faults.error_rate = second.faults.error_rate = 0.5
    first.faults.seed = second.faults.seed = 7
    a, b = await _statuses(first, 40), await _statuses(second, 40)
    assert a == b
    assert 5 <= a.count(200) <= 35 and set(a) - {200} <= {500, 503}


@pytest.mark.parametrize("emulator", [EmulatorConfig(faults=Faults(drop_rate=1.0))], indirect=True)
async def test_drop_rate_closes_the_connection(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await presign(http, emulator)
    emulator.faults.drop_rate = 0.0
    reply = await presign(http, emulator)
    emulator.faults.drop_rate = 1.0
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await put(http, reply.body["result"]["url"], make_image())
    key = reply.body["result"]["thumbnailKey"]
    # aiohttp re-sends an idempotent PUT once when a reused keep-alive connection drops, so the PUT may
    # have arrived twice; the non-idempotent POST never is re-sent.
    assert emulator.counters.puts_per_key[key] in (1, 2)
    assert emulator.counters.faults["dropped"] == 1 + emulator.counters.puts_per_key[key]
    assert emulator.counters.urls_issued == 1 and not emulator.objects


async def test_latency_delays_every_answer(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.latency = 30.0  # far past the client's timeout: the answer cannot come in time
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(presign(http, emulator), timeout=0.2)
    emulator.faults.latency = 0.0
    assert (await presign(http, emulator)).status == 200


async def test_storm_answers_429_410_until_it_ends(http: aiohttp.ClientSession) -> None:
    fake = FakeClock()
    async with Emulator(clock=fake.clock) as emulator:
        emulator.faults.storm(0.4)
        during = [await presign(http, emulator), await upload_status(http, emulator, "demo/x/y.jpg")]
        assert [(r.status, r.body["code"], r.headers["Retry-After"]) for r in during] == [(429, "410", "1")] * 2
        fake.advance(0.4)
        assert (await presign(http, emulator)).status == 200
        assert emulator.counters.responses_429 == 2


DATE = "Wed, 21 Oct 2037 07:28:00 GMT"


@pytest.mark.parametrize(("value", "sent"), [("", None), ("3600", "3600"), (DATE, DATE), ("auto", "60")])
async def test_retry_after_values(
    emulator: Emulator, http: aiohttp.ClientSession, value: str, sent: str | None
) -> None:
    emulator.faults.retry_after = value
    emulator.faults.storm(59.5)
    reply = await presign(http, emulator)
    assert reply.status == 429 and reply.headers.get("Retry-After") == sent


async def test_html_502_in_progress_403_redirect_and_stall(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.html_error_rate = 1.0
    page = await presign(http, emulator)
    assert page.status == 502 and page.headers["Content-Type"].startswith("text/html") and "<html>" in page.text
    emulator.faults.html_error_rate = 0.0
    emulator.faults.forbidden_names = r"secret"
    assert (await presign(http, emulator, "my-secret.jpg")).status == 403
    issued = await presign(http, emulator, "ok.jpg")
    key, url = issued.body["result"]["thumbnailKey"], issued.body["result"]["url"]
    assert (await put(http, url, make_image())).status == 200
    emulator.faults.in_progress = 1
    first, second = [await upload_status(http, emulator, key) for _ in range(2)]
    assert first.body["result"] == {"uploadStatus": "IN_PROGRESS"}
    assert second.body["result"] == {"uploadStatus": "COMPLETED"}
    emulator.faults.redirect_to = "https://elsewhere.example"
    async with http.post(emulator.base_url + "/api/v1/workspaces/demo/person-thumbnail/uploads/complete",
                         allow_redirects=False) as resp:
        assert resp.status == 307 and resp.headers["Location"].startswith("https://elsewhere.example/api/v1/")
    emulator.faults.redirect_to = ""
    emulator.faults.stall_rate = 1.0
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(presign(http, emulator), timeout=0.2)
    counts = emulator.counters.faults
    assert (counts["html_errors"], counts["forbidden"], counts["stalled"]) == (1, 1, 1)


async def test_quota_exhausted_is_429_code_400(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.quota_exhausted = True
    reply = await presign(http, emulator)
    assert (reply.status, reply.body) == (429, {"code": "400", "message": "quota exceeded"})


async def test_faults_never_touch_the_state_route(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.error_rate = emulator.faults.drop_rate = emulator.faults.stall_rate = 1.0
    emulator.faults.latency = 3600.0
    emulator.faults.quota_exhausted = True
    async with http.get(f"{emulator.base_url}/_emulator/state") as resp:  # answered, not delayed an hour
        assert resp.status == 200
        state = await resp.json()
    assert state["faults"]["error_rate"] == 1.0 and state["faults"]["quota_exhausted"] is True


async def test_state_route_reports_counters_and_objects_without_secrets(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    issued = await presign(http, emulator, "a.jpg")
    key, url = issued.body["result"]["thumbnailKey"], issued.body["result"]["url"]
    data = make_image()
    assert (await put(http, url, data)).status == 200
    await upload_status(http, emulator, key)
    async with http.get(f"{emulator.base_url}/_emulator/state") as resp:
        text = await resp.text()
    state = json.loads(text)
    assert DEFAULT_SECRET_KEY not in text
    assert url.split("X-Amz-Signature=")[1] not in text  # the URL's token is a credential too
    assert state == json.loads(json.dumps(emulator.state()))
    counters = state["counters"]
    assert (
        counters["presign_calls"],
        counters["status_calls"],
        counters["put_calls"],
        counters["puts_ok"],
    ) == (
        1,
        1,
        1,
        1,
    )
    assert counters["calls_by_route"] == {"presign": 1, "put": 1, "status": 1}
    assert counters["responses_by_status"] == {"200": 3}
    assert counters["puts_per_key"] == {key: 1}
    assert len(counters["presign_arrivals"]) == 1
    assert state["objects"][key]["size"] == len(data) and state["objects"][key]["format"] == "JPEG"
    assert state["access_keys"] == [DEFAULT_ACCESS_KEY] and state["object_count"] == 1
    async with http.get(f"{emulator.base_url}/_emulator/state?arrivals=0&objects=0") as resp:
        slim = await resp.json()
    assert "presign_arrivals" not in slim["counters"] and "objects" not in slim
    emulator.reset_counters()
    assert emulator.counters.snapshot()["presign_calls"] == 0 and key in emulator.objects


def test_emulator_in_thread_serves_sync_code() -> None:
    fake = FakeClock()
    with emulator_in_thread(EmulatorConfig(rate=1), clock=fake.clock) as emu:
        path = "/api/v1/workspaces/demo/person-thumbnail/presign"
        creds = emu.credentials

        def call() -> int:
            headers = signed_headers("POST", path, creds.access_key, creds.secret_key)
            req = urllib.request.Request(emu.base_url + path, b'{"thumbnailFileName": "a.jpg"}', headers)
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    return int(resp.status)
            except urllib.error.HTTPError as exc:
                exc.close()
                return exc.code

        assert [call(), call()] == [200, 429]
        emu.faults.quota_exhausted = True  # a change from this thread applies at once
        fake.advance(1.0)  # the window is free again: the 429 now is the quota's
        assert call() == 429
        assert emu.state()["counters"]["presign_calls"] == 3
        base = emu.base_url
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(base + "/_emulator/state", timeout=2)


def test_emulator_thread_fixture_and_start_failure(emulator_thread: Emulator) -> None:
    port = int(emulator_thread.base_url.rsplit(":", 1)[1])
    with urllib.request.urlopen(emulator_thread.base_url + "/_emulator/state", timeout=5) as resp:
        assert json.load(resp)["base_url"] == emulator_thread.base_url
    with pytest.raises(OSError), emulator_in_thread(EmulatorConfig(port=port)):
        pass
    with pytest.raises(ConfigError, match="cannot listen"):
        run_emulator(EmulatorConfig(port=port))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers were restored


def _parse(argv: list[str], env: dict[str, str] | None = None) -> EmulatorConfig:
    parser = argparse.ArgumentParser()
    add_emulator_arguments(parser)
    return config_from_args(parser.parse_args(argv), env or {})


def test_config_from_args() -> None:
    default = _parse([])
    assert (default.port, default.rate, default.confirm_rate, default.workspaces) == (
        8080,
        50.0,
        1000.0,
        ("demo",),
    )
    assert default.credentials == (Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY),)
    cfg = _parse(
        [
            "--port",
            "0",
            "--rate",
            "5",
            "--workspace",
            "a",
            "--workspace",
            "b",
            "--error-rate",
            "0.1",
            "--latency",
            "0.5",
            "--queue-rate",
            "0.2",
            "--queue-delay",
            "0.04",
            "--seed",
            "3",
            "--storm",
            "10",
            "--quota-exhausted",
        ],
        {"NCLOUD_ACCESS_KEY": "AK", "NCLOUD_SECRET_KEY": "SK"},
    )
    assert (cfg.rate, cfg.workspaces, cfg.credentials) == (5.0, ("a", "b"), (Credentials("AK", "SK"),))
    assert (cfg.faults.error_rate, cfg.faults.latency, cfg.faults.seed, cfg.faults.quota_exhausted) == (
        0.1,
        0.5,
        3,
        True,
    )
    assert (cfg.faults.queue_rate, cfg.faults.queue_delay) == (0.2, 0.04)
    assert 9 < cfg.faults.storm_remaining() <= 10
    flags = _parse(["--access-key", "K", "--secret-key", "S"], {"NCLOUD_ACCESS_KEY": "AK", "NCLOUD_SECRET_KEY": "SK"})
    assert flags.credentials == (Credentials("K", "S"),)
    for bad in (["--access-key", "K"], ["--error-rate", "2"], ["--storage", "disk"], ["--rate", "-1"],
                ["--queue-rate", "1.5"], ["--queue-delay", "-1"]):
        with pytest.raises(ConfigError):
            _parse(bad)


def test_help_describes_the_emulator_and_its_state_route() -> None:
    from pipeline.emulator.runtime import DESCRIPTION, EPILOG

    parser = argparse.ArgumentParser(description=DESCRIPTION, epilog=EPILOG)
    add_emulator_arguments(parser)
    text = parser.format_help()
    assert "/_emulator/state" in text and "--stall-rate" in text and "--verbose" in text
    assert _parse(["-v"]).log_requests and _parse(["--in-progress", "2"]).faults.in_progress == 2


def test_banner_shows_only_the_default_secret() -> None:
    emu = Emulator()
    emu.base_url = "http://127.0.0.1:1"
    assert f"secret_key={DEFAULT_SECRET_KEY}" in banner(emu)
    custom = Emulator(EmulatorConfig(credentials=(Credentials("K", "very-secret"),)))
    assert "very-secret" not in banner(custom) and "access_key=K" in banner(custom)


def test_module_entry_point_starts_and_stops_on_sigterm_printing_counters() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.emulator", "--port", "0", "--rate", "7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("MI emulator listening on http://127.0.0.1:"), line
        base = line.split()[4]
        with urllib.request.urlopen(base + "/_emulator/state", timeout=5) as resp:
            assert json.load(resp)["config"]["rate"] == 7.0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        rest = proc.stdout.read()
        assert f"export NCLOUD_ACCESS_KEY={DEFAULT_ACCESS_KEY}" in rest and f"--endpoint {base}" in rest
        assert "MI emulator stopped: presign_calls=0" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
